"""The one place that decides which implementation of an op runs.

`DOCPROC_KERNELS` selects it: unset or "auto" takes Triton for CUDA tensors and the plain-PyTorch reference
otherwise; "reference" forces the reference; "triton" forces Triton (on CPU tensors this needs
`TRITON_INTERPRET=1`, set before the first kernel module is imported). Read on every call so that tests and
benchmarks can switch it. Triton itself is imported only by the op modules that use it, and only once chosen.
"""

import os

import torch

ENV_VAR = "DOCPROC_KERNELS"
_MODES = ("auto", "reference", "triton")


def kernel_mode() -> str:
    mode = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if mode not in _MODES:
        raise ValueError(f"{ENV_VAR}={mode!r}: expected one of {', '.join(_MODES)}")
    return mode


def use_triton(tensor: torch.Tensor) -> bool:
    """Whether the op called on `tensor` should run its Triton kernel."""
    mode = kernel_mode()
    if mode == "auto":
        return tensor.is_cuda
    return mode == "triton"
