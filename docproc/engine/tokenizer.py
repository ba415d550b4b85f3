"""Text <-> token ids. The API counts an upload's tokens without a model, torch or transformers
(`LocalTokenizer`, `RemoteTokenizer`); the local engines read through `HFTokenizer`, which also carries the
chat template.

A remote model's token counts come, in order of preference, from:
1. the server's own tokenizer, through its ``/tokenize`` and ``/detokenize`` endpoints (vLLM, SGLang);
2. a local tokenizer directory, ``DOCPROC_REMOTE_TOKENIZER``;
3. an estimate of 4 characters per token: chunks are then cut by characters and counts are approximate.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import tokenizers

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CHARS_PER_TOKEN = 4


class EngineUnavailable(RuntimeError):
    """The model server cannot be reached or keeps failing; the job fails with this code."""

    code = "engine_unavailable"


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class CharEstimate:
    """About 4 characters per token: each pseudo-token packs up to 4 characters (as UTF-32) into one integer,
    so that cutting and joining pseudo-tokens cuts and joins the text."""

    def encode(self, text: str) -> list[int]:
        return [
            int.from_bytes(text[i : i + CHARS_PER_TOKEN].encode("utf-32-le"), "little")
            for i in range(0, len(text), CHARS_PER_TOKEN)
        ]

    def decode(self, ids: Sequence[int]) -> str:
        width = 4 * CHARS_PER_TOKEN
        return "".join(i.to_bytes(width, "little").decode("utf-32-le").rstrip("\x00") for i in ids)


class HFTokenizer:
    """A transformers tokenizer for the engines: ids without special tokens (the chat template adds its own);
    decoding drops special tokens."""

    def __init__(self, tokenizer: "PreTrainedTokenizerBase") -> None:
        self.hf = tokenizer

    @classmethod
    def from_path(cls, path: Path) -> "HFTokenizer":
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(path))

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=True)


class LocalTokenizer:
    """A checkpoint directory's `tokenizer.json`, read by the `tokenizers` library (what transformers' fast
    tokenizers run on), never with special tokens."""

    def __init__(self, path: Path) -> None:
        self.tokenizer = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self.tokenizer.encode_batch(texts, add_special_tokens=False)]


class ServerTokenizer:
    """vLLM's and SGLang's /tokenize and /detokenize, next to /v1."""

    def __init__(self, root_url: str, model: str | None, http: httpx.Client) -> None:
        self.root_url, self.http = root_url, http
        self.model = {"model": model} if model else {}

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(f"{self.root_url}{path}", json=self.model | body)
        response.raise_for_status()
        return response.json()

    def encode(self, text: str) -> list[int]:
        return self._post("/tokenize", {"prompt": text, "add_special_tokens": False})["tokens"]

    def decode(self, ids: Sequence[int]) -> str:
        return self._post("/detokenize", {"tokens": list(ids)})["prompt"]


class RemoteTokenizer:
    """The remote model's tokenizer, chosen on first use (see the module's docstring)."""

    def __init__(
        self, base_url: str, model: str | None, local_path: Path | None, api_key: str = "EMPTY"
    ) -> None:
        self.base_url, self.model, self.local_path = base_url.rstrip("/"), model, local_path
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self._backend: Tokenizer | None = None

    def backend(self) -> Tokenizer:
        if self._backend is None:
            self._backend = self._choose()
        return self._backend

    def _choose(self) -> Tokenizer:
        if self.local_path is not None:
            return LocalTokenizer(self.local_path)
        server = ServerTokenizer(
            self.base_url.removesuffix("/v1"), self.model, httpx.Client(timeout=60, headers=self.headers)
        )
        try:
            server.encode("probe")
        except httpx.HTTPStatusError:  # no such endpoint
            return CharEstimate()
        except httpx.TransportError as exc:
            raise EngineUnavailable(f"The model server at {self.base_url} is unreachable: {exc}.") from exc
        return server

    def encode(self, text: str) -> list[int]:
        return self.backend().encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.backend().decode(ids)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of texts (the API counts an upload's tokens this way). With the server away, an upload is
        counted by the estimate rather than refused."""
        try:
            backend = self.backend()
        except EngineUnavailable:
            backend = CharEstimate()
        return [backend.encode(text) for text in texts]
