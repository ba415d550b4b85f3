"""JSON shapes of the OpenAI-compatible API (/openai/v1), as OpenAI's API reference defines them."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from docproc.chat import ChatMessage, FinishReason, ResponseFormat

# The one endpoint a batch can run.
CHAT_ENDPOINT = "/v1/chat/completions"


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False
    include_obfuscation: bool | None = None


class ChatCompletionRequest(BaseModel):
    """The parameters docproc honours; others OpenAI defines (tools, logprobs, n > 1, ...) are refused."""

    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    response_format: ResponseFormat | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] | None = None
    # Accepted and ignored, as a server that keeps nothing for later may.
    user: str | None = Field(None, max_length=256)
    store: bool | None = None
    metadata: dict[str, str] | None = None

    def options(self) -> dict[str, Any]:
        """The chat job's options (docproc.chat.ChatOptions, which validates the values)."""
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        options = {
            "messages": [message.model_dump(mode="json", exclude_none=True) for message in self.messages],
            "max_tokens": self.max_completion_tokens or self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": stop,
            "response_format": self.response_format.model_dump(mode="json", exclude_none=True)
            if self.response_format
            else None,
        }
        return {key: value for key, value in options.items() if value is not None}


class PromptTokensDetails(BaseModel):
    cached_tokens: int


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "docproc"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


FilePurpose = Literal["batch", "batch_output", "user_data"]


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: FilePurpose
    status: Literal["processed"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class BatchCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_file_id: str
    endpoint: Literal["/v1/chat/completions"]
    # OpenAI's one window; docproc runs a batch as soon as workers are free and never expires one.
    completion_window: Literal["24h"]
    metadata: dict[str, str] | None = Field(None, max_length=16)


class BatchRequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchError(BaseModel):
    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchError]


class OpenAIBatch(BaseModel):
    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None
    input_file_id: str
    completion_window: str
    status: Literal[
        "validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"
    ]
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None = None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: BatchRequestCounts
    metadata: dict[str, str] | None


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIBatch]
    has_more: bool
    first_id: str | None
    last_id: str | None
