"""Triton kernels run on CUDA where there is a GPU, else in Triton's interpreter on CPU tensors.

`triton.jit` chooses between compiling and interpreting when a kernel module is imported, so TRITON_INTERPRET
must be set before that: here, at collection time (`kernels` imports its Triton modules on first use).
"""

import importlib
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

TRITON_MODULES = (
    "kernels.gated_delta_rule.chunk",
    "kernels.gated_delta_rule.fused_recurrent",
    "kernels.causal_conv1d.triton",
)


@pytest.fixture(scope="session")
def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture
def triton_path(monkeypatch: pytest.MonkeyPatch, device: torch.device) -> None:
    """Force the public functions onto their Triton kernels (interpreted on CPU)."""
    pytest.importorskip("triton")
    if device.type == "cpu":
        import triton.language as tl
        from triton.runtime.interpreter import InterpretedFunction

        kernel = importlib.import_module(TRITON_MODULES[0])._chunk_prepare_kernel
        # Triton's own library (tl.sum, ...) is jit'd when triton is first imported: an import by anything
        # before this conftest (a torch.compile'd function, say) leaves it compiled-only.
        assert isinstance(kernel, InterpretedFunction) and isinstance(tl.sum, InterpretedFunction), (
            "Triton was imported before TRITON_INTERPRET=1 was set: find who imports it early"
        )
    monkeypatch.setenv("DOCPROC_KERNELS", "triton")


@pytest.fixture
def reference_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCPROC_KERNELS", "reference")
