"""Ingestion failures: each has a short snake_case `code` for clients and a user-facing `message`."""

from typing import Any

from docproc.errors import ServiceError


class IngestionError(ServiceError):
    """A document that cannot be turned into text (422 unless a subclass says otherwise). Subclasses name the
    reason."""

    code = "ingestion_error"
    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(type(self).status, type(self).code, message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message,))


class EmptyFileError(IngestionError):
    code = "empty_file"


class UnsupportedTypeError(IngestionError):
    code = "unsupported_type"
    status = 415


class NoTextError(IngestionError):
    code = "no_text"


class NoTextLayerError(NoTextError):
    code = "no_text_layer"


class TextTooLongError(IngestionError):
    code = "text_too_long"

    @classmethod
    def over(cls, max_chars: int) -> "TextTooLongError":
        return cls(f"The document has more than {max_chars:,} characters of text, the most accepted.")


class EncryptedPdfError(IngestionError):
    """Encrypted with a security handler that cannot be opened (see the subclasses for password cases)."""

    code = "encrypted_pdf"


class PasswordRequiredError(EncryptedPdfError):
    code = "password_required"


class WrongPasswordError(EncryptedPdfError):
    code = "wrong_password"


class MalformedPdfError(IngestionError):
    code = "malformed_pdf"


class TruncatedPdfError(MalformedPdfError):
    code = "truncated_pdf"


class MalformedDocumentError(IngestionError):
    """A Word, PowerPoint, EPUB or image file that is damaged."""

    code = "malformed_document"


class TruncatedDocumentError(MalformedDocumentError):
    code = "truncated_document"


class OcrOffError(NoTextError):
    """A page image with OCR switched off."""

    code = "ocr_off"


class OcrUnavailableError(IngestionError):
    """The server has no OCR engine installed."""

    code = "ocr_unavailable"
    status = 503


class TooManyPagesError(IngestionError):
    code = "too_many_pages"


class DecompressionBombError(IngestionError):
    code = "decompression_bomb"


class ResourceLimitError(IngestionError):
    """The parser needed more memory than allowed (a bomb the pre-scan missed, or a pathological file)."""

    code = "resource_limit_exceeded"


class FormDrawLimitError(ResourceLimitError):
    """A page drawing form XObjects nested so deep and wide that parsing it would exhaust memory and time."""

    code = "form_draw_limit_exceeded"


class ExtractionTimeoutError(IngestionError):
    code = "extraction_timeout"


class ParserBusyError(IngestionError):
    """Every parser process the host allows is busy: the upload may be retried after `retry_after_s`."""

    code = "busy"
    status = 503

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(retry_after_s)}

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.retry_after_s))
