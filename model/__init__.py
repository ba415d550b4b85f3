"""Qwen3-Next hybrid LM for streaming long-document inference (see `model.qwen3_next`)."""

from model.qwen3_next import HybridLM, ModelArgs
from model.sampling import GREEDY, INSTRUCT, THINKING, Sampling
from model.state import HybridState

__all__ = ["GREEDY", "INSTRUCT", "THINKING", "HybridLM", "HybridState", "ModelArgs", "Sampling"]
