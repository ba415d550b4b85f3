"""Options a client may pass with a job, validated by the API: torch-free, so the API process stays light."""

from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from model.sampling import Sampling

Method = Literal["auto", "extract_compress", "extractive", "abstractive"]


class SummarizeOptions(BaseModel):
    """Options a client may pass with a summarize job."""

    model_config = {"extra": "forbid"}

    max_words: int = Field(150, ge=10, le=2000)
    instructions: str | None = Field(None, max_length=2000)
    # auto: extract_compress for models smaller than DOCPROC_COMPRESS_BELOW_PARAMETERS, else abstractive
    # (the streaming read for the hybrid engine, hierarchical for others). extractive: no model at all.
    method: Method = "auto"
    # Sampling; unset fields take the engine's preset (Qwen Instruct/Thinking presets, greedy for others).
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0, le=2**31 - 1)
    # Engines pass the seed to torch or to an OpenAI-compatible server: both take a 64-bit integer.
    seed: int = Field(0, ge=0, le=2**63 - 1)
    # Read at most this many tokens of the document (cheap runs, load tests).
    max_input_tokens: int | None = Field(None, ge=1, le=2**31 - 1)

    def sampling(self, preset: "Sampling") -> "Sampling":
        chosen = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}
        return replace(preset, seed=self.seed, **{k: v for k, v in chosen.items() if v is not None})
