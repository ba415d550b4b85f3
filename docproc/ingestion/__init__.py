"""Ingestion: uploaded files (PDF, images, DOCX, PPTX, EPUB, plain text, Markdown, HTML) to page-numbered
text, each page with its source (text_layer, ocr, or the format), with clear errors.

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
    MalformedDocumentError,
    MalformedPdfError,
    NoTextError,
    NoTextLayerError,
    OcrOffError,
    ParserBusyError,
    PasswordRequiredError,
    ResourceLimitError,
    TextTooLongError,
    TooManyPagesError,
    TruncatedDocumentError,
    TruncatedPdfError,
    UnsupportedTypeError,
    WrongPasswordError,
)
from .images import image_job
from .ocr import OcrMode
from .office import office_job
from .parser_slots import ParserSlots
from .pdf import ParserLimits, extract_pdf, read_in_child
from .sniff import ARCHIVES, HTML, IMAGES, MARKDOWN, PDF, PLAIN_TEXT, sniff_content_type
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
    "MalformedDocumentError",
    "MalformedPdfError",
    "NoTextError",
    "NoTextLayerError",
    "OcrMode",
    "OcrOffError",
    "Page",
    "ParserBusyError",
    "ParserLimits",
    "ParserSlots",
    "PasswordRequiredError",
    "ResourceLimitError",
    "TextTooLongError",
    "TooManyPagesError",
    "TruncatedDocumentError",
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
    ocr: OcrMode = OcrMode.auto,
) -> ExtractedDocument:
    """The text of the file at `path`, page by page, its type sniffed from its bytes.

    PDFs are read in child processes (up to `workers`, default one per usable CPU, for big documents) within
    `limits` (time, memory, inflated bytes, form draws, host-wide parser slots), with `password` for encrypted
    ones, OCR for pages without a text layer (`ocr`: auto), every page (force) or none (off). Images (PNG,
    JPEG, TIFF frames) are read by OCR; DOCX, PPTX (a slide a page) and EPUB (a chapter a page) as Markdown,
    each in one child within the same limits. Text formats, and DOCX between hard page breaks, are split at
    form feeds, else into pages of about `page_chars` characters. Raises an
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
            ocr=ocr,
        )
        return ExtractedDocument(content_type, pages)
    if content_type in IMAGES:
        pages = read_in_child(path, limits, max_chars, image_job, ocr, max_pages, limits.max_image_pixels)
        return ExtractedDocument(content_type, pages)
    if content_type in ARCHIVES:
        pages = read_in_child(
            path,
            limits,
            max_chars,
            office_job,
            content_type,
            max_pages,
            max_chars,
            page_chars,
            limits.max_inflated_archive_bytes,
        )
        return ExtractedDocument(content_type, pages)
    texts = read_text_document(
        path, content_type, max_chars=max_chars, max_pages=max_pages, page_chars=page_chars
    )
    source = TEXT_SOURCES[content_type]
    return ExtractedDocument(
        content_type, [Page(number, text, source) for number, text in enumerate(texts, start=1)]
    )
