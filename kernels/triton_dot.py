"""The matrix product every Triton kernel here uses, with the interpreter's bf16 bug worked around."""

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

DOT_DTYPES = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}


@triton.jit
def dot(a, b, DOT_DTYPE: tl.constexpr, EMULATE_DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr):
    """a @ b with operands rounded to DOT_DTYPE, accumulated in float32. Triton's interpreter multiplies
    bf16 operands as raw bits, so there (EMULATE_DOT_DTYPE) the rounded operands are multiplied in float32."""
    a, b = a.to(DOT_DTYPE), b.to(DOT_DTYPE)
    if EMULATE_DOT_DTYPE:
        a, b = a.to(tl.float32), b.to(tl.float32)
    return tl.dot(a, b, input_precision=PRECISION)


def dot_arguments(kernel: object, dtype: torch.dtype) -> dict[str, object]:
    """The constexpr arguments of `dot` for inputs of `dtype` in `kernel`: float32 inputs take exact
    ("ieee") products so that they match the references, others their own dtype on the tensor cores."""
    return {
        "DOT_DTYPE": DOT_DTYPES[dtype],
        "EMULATE_DOT_DTYPE": isinstance(kernel, InterpretedFunction) and dtype != torch.float32,
        "PRECISION": "ieee" if dtype == torch.float32 else "tf32",
    }
