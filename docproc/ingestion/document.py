"""What extraction returns: the document's text, page by page."""

from dataclasses import dataclass
from functools import cached_property

# Joins pages in a document's text and when it is read in pieces; counted in its tokens (matching its jobs).
PAGE_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Page:
    number: int  # 1-based page number (for non-paginated text: 1)
    text: str
    # How the text was obtained: "text_layer" (a PDF's), "ocr", or the file's format ("text", "markdown",
    # "html", "docx", "pptx", "epub"). Readers of the text (the pipeline) need not set it.
    source: str = "text"


@dataclass(frozen=True)
class ExtractedDocument:
    content_type: str  # "application/pdf" | "text/plain" | "text/markdown" | "text/html"
    pages: list[Page]

    @cached_property
    def text(self) -> str:
        """The pages' text in order, blank pages left out."""
        return PAGE_SEPARATOR.join(page.text for page in self.pages if page.text)
