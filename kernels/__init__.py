"""docproc's compute kernels: Triton on CUDA, plain PyTorch elsewhere (see `kernels.dispatch`).

Shares its import name with Hugging Face's hub package `kernels`; it deliberately defines no `__version__`, so
transformers' `is_kernels_available()` never takes it for that package (tests/kernels/test_hub_name_clash.py).
"""

from kernels.causal_conv1d import causal_conv1d, causal_conv1d_update
from kernels.flash_attention import attention_with_lse
from kernels.gated_delta_rule import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule

__all__ = [
    "attention_with_lse",
    "causal_conv1d",
    "causal_conv1d_update",
    "chunk_gated_delta_rule",
    "fused_recurrent_gated_delta_rule",
]
