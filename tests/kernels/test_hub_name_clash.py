"""Our `kernels` shares its import name with Hugging Face's hub package `kernels`; transformers must never
take ours for it (it would then import hub-only names from it and fail, or route layers through it).

transformers 5.24 (`utils.import_utils.is_kernels_available`) finds a `kernels` module on the path, then looks
for its version: in the metadata of a distribution named "kernels", else of the distributions that ship a
top-level `kernels` (the editable install: "docproc"), else by importing it and reading `__version__`. Only a
version in [KERNELS_MIN_VERSION, KERNELS_MAX_VERSION) counts. Ours has no `__version__`, and docproc's version
must stay outside that range. Each case runs in a fresh interpreter: transformers caches the answer.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import packages_distributions, version
from pathlib import Path

import pytest
from packaging.version import Version
from transformers.utils.import_utils import KERNELS_MAX_VERSION, KERNELS_MIN_VERSION

REPO_ROOT = Path(__file__).resolve().parents[2]

# Imports transformers first (so that it, not we, imports `kernels` if anything does), runs a tiny
# Qwen3-Next forward, then prints what transformers concluded about `kernels`.
PROBE = """
import sys
import torch
from transformers import Qwen3NextConfig, Qwen3NextForCausalLM
from transformers.integrations import hub_kernels
from transformers.utils import import_utils

config = Qwen3NextConfig(
    vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
    num_key_value_heads=1, head_dim=16, linear_key_head_dim=8, linear_value_head_dim=8,
    linear_num_key_heads=2, linear_num_value_heads=4, moe_intermediate_size=16,
    shared_expert_intermediate_size=16, num_experts=4, num_experts_per_tok=2,
    layer_types=["linear_attention", "full_attention"],
)
torch.manual_seed(0)
model = Qwen3NextForCausalLM(config).eval()
with torch.no_grad():
    logits = model(torch.randint(0, 64, (1, 70))).logits
assert logits.shape == (1, 70, 64) and torch.isfinite(logits).all()
assert not import_utils.is_kernels_available()
assert not hasattr(hub_kernels, "get_kernel_hub"), "transformers imported hub names from our kernels"
_, version = import_utils._is_package_available("kernels", return_version=True)
ours = sys.modules.get("kernels")
print("version", version)
print("imported", ours.__file__ if ours is not None else None)
import kernels
print("resolves_to", kernels.__file__)
"""


def run_probe(env: dict[str, str], cwd: Path, python_args: tuple[str, ...] = ()) -> dict[str, str]:
    """Runs PROBE in a fresh interpreter (in `cwd`: `python -c` puts it first on sys.path)."""
    result = subprocess.run(
        [sys.executable, *python_args, "-c", PROBE],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return dict(line.split(" ", 1) for line in result.stdout.splitlines())


def test_installed_editable_is_not_taken_for_the_hub_package() -> None:
    """The project as installed in the venv (editable): the version comes from docproc's metadata."""
    if "docproc" not in packages_distributions().get("kernels", []):
        pytest.skip("docproc is not pip-installed here; the path-only case is the other test")
    docproc_version = Version(version("docproc"))
    assert not Version(KERNELS_MIN_VERSION) <= docproc_version < Version(KERNELS_MAX_VERSION), (
        "transformers would take docproc's version for the hub package's and import hub names from ours"
    )
    report = run_probe(dict(os.environ), cwd=REPO_ROOT)
    assert report["version"] == str(docproc_version)
    assert report["resolves_to"] == str(REPO_ROOT / "kernels" / "__init__.py")


def test_path_only_copy_is_not_taken_for_the_hub_package(tmp_path: Path) -> None:
    """A copy of the sources on PYTHONPATH, docproc not installed: transformers imports ours to read a
    `__version__`, finds none, and gives up on it."""
    source = tmp_path / "src"
    shutil.copytree(REPO_ROOT / "kernels", source / "kernels", ignore=shutil.ignore_patterns("__pycache__"))
    # The venv's site-packages without docproc's install (its dist-info and editable finder).
    site_packages = Path(sysconfig.get_paths()["purelib"])
    view = tmp_path / "site-packages"
    view.mkdir()
    for entry in site_packages.iterdir():
        if not entry.name.startswith(("docproc-", "__editable__", "__editable___docproc")):
            (view / entry.name).symlink_to(entry)
    env = dict(os.environ, PYTHONPATH=f"{source}{os.pathsep}{view}")
    # -S: no site-packages (nor its .pth files) besides the view; cwd away from the repo, whose
    # docproc.egg-info would count as an install.
    report = run_probe(env, cwd=tmp_path, python_args=("-S",))
    assert report["version"] == "N/A"
    assert report["imported"] == str(source / "kernels" / "__init__.py")  # transformers did import ours
    assert report["resolves_to"] == report["imported"]
