"""The dispatch point and the import surface of `kernels`."""

import subprocess
import sys

import pytest
import torch

from kernels import chunk_gated_delta_rule
from kernels.dispatch import ENV_VAR, use_triton
from kernels.testing import gated_delta_rule_inputs


@pytest.mark.parametrize(
    ("mode", "cpu_uses_triton"), [(None, False), ("auto", False), ("reference", False), ("triton", True)]
)
def test_mode_selects_implementation(
    monkeypatch: pytest.MonkeyPatch, mode: str | None, cpu_uses_triton: bool
):
    if mode is None:
        monkeypatch.delenv(ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(ENV_VAR, mode)
    assert use_triton(torch.zeros(1)) is cpu_uses_triton


def test_unknown_mode_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "cuda")
    x = gated_delta_rule_inputs(B=1, T=2, H=1, HV=1, K=16, V=16, with_state=False)
    with pytest.raises(ValueError, match=ENV_VAR):
        chunk_gated_delta_rule(x["q"], x["k"], x["v"], x["g"], x["beta"])


def run_python(code: str) -> None:
    env_free = {"PATH": "/usr/bin:/bin"}  # no DOCPROC_KERNELS / TRITON_INTERPRET from this session
    result = subprocess.run(
        [sys.executable, "-c", code], env=env_free, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_import_is_cheap() -> None:
    run_python(
        "import sys, kernels\n"
        "heavy = {'triton', 'transformers'} & {name.split('.')[0] for name in sys.modules}\n"
        "assert not heavy, heavy\n"
    )


def test_cpu_path_works_without_triton() -> None:
    # sys.modules[name] = None makes `import name` raise ImportError, as if it were not installed.
    run_python(
        "import sys\n"
        "sys.modules['triton'] = None\n"
        "import torch\n"
        "from kernels import causal_conv1d, chunk_gated_delta_rule\n"
        "from kernels.testing import gated_delta_rule_inputs\n"
        "x = gated_delta_rule_inputs(B=1, T=3, H=1, HV=2, K=16, V=16, with_state=False)\n"
        "o, _ = chunk_gated_delta_rule(x['q'], x['k'], x['v'], x['g'], x['beta'])\n"
        "y, _ = causal_conv1d(torch.randn(1, 3, 8), torch.randn(8, 4))\n"
        "assert o.shape == (1, 3, 2, 16) and y.shape == (1, 3, 8)\n"
    )
