"""Ingestion: uploaded files (PDF, plain text, Markdown, HTML) to page-numbered text, with clear errors.

document = extract(path)               # ExtractedDocument; raises an IngestionError subclass
document.pages[0].number, document.text
"""

from pathlib import Path

from .document import ExtractedDocument, Page
from .errors import (
    DecompressionBombError,
    EmptyFileError,
    EncryptedPdfError,
    ExtractionTimeoutError,
    FormDrawLimitError,
    IngestionError,
    MalformedPdfError,
    NoTextError,
    NoTextLayerError,
    ParserBusyError,
    PasswordRequiredError,
    ResourceLimitError,
    TextTooLongError,
    TooManyPagesError,
    TruncatedPdfError,
    UnsupportedTypeError,
    WrongPasswordError,
)
from .parser_slots import ParserSlots
from .pdf import ParserLimits, extract_pdf
from .sniff import HTML, MARKDOWN, PDF, PLAIN_TEXT, sniff_content_type
from .text import read_text_document

DEFAULT_LIMITS = ParserLimits()
# Page.source of text formats.
TEXT_SOURCES = {PLAIN_TEXT: "text", MARKDOWN: "markdown", HTML: "html"}

__all__ = [
    "DecompressionBombError",
    "EmptyFileError",
    "EncryptedPdfError",
    "ExtractedDocument",
    "ExtractionTimeoutError",
    "FormDrawLimitError",
    "IngestionError",
    "MalformedPdfError",
    "NoTextError",
    "NoTextLayerError",
    "Page",
    "ParserBusyError",
    "ParserLimits",
    "ParserSlots",
    "PasswordRequiredError",
    "ResourceLimitError",
    "TextTooLongError",
    "TooManyPagesError",
    "TruncatedPdfError",
    "UnsupportedTypeError",
    "WrongPasswordError",
    "extract",
    "sniff_content_type",
]


def extract(
    path: Path,
    *,
    password: str | None = None,
    limits: ParserLimits = DEFAULT_LIMITS,
    max_pages: int = 5000,
    max_chars: int = 50_000_000,
    workers: int | None = None,
    page_chars: int = 3000,
) -> ExtractedDocument:
    """The text of the file at `path`, page by page, its type sniffed from its bytes.

    PDFs are read in child processes (up to `workers`, default one per usable CPU, for big documents) within
    `limits` (time, memory, inflated bytes, form draws, host-wide parser slots), with `password` for encrypted
    ones; other formats are split at form feeds, else into pages of about `page_chars` characters. Raises an
    IngestionError subclass (with `.code` and `.message`) for anything that yields no text, or too much
    (`max_pages`, `max_chars`), and ParserBusyError (503) when the host's parser slots stay busy.
    """
    path = Path(path)
    content_type = sniff_content_type(path)
    if content_type == PDF:
        pages = extract_pdf(
            path,
            password=password,
            limits=limits,
            max_pages=max_pages,
            max_chars=max_chars,
            workers=workers,
        )
        return ExtractedDocument(content_type, pages)
    texts = read_text_document(
        path, content_type, max_chars=max_chars, max_pages=max_pages, page_chars=page_chars
    )
    source = TEXT_SOURCES[content_type]
    return ExtractedDocument(
        content_type, [Page(number, text, source) for number, text in enumerate(texts, start=1)]
    )
