"""Word (DOCX), PowerPoint (PPTX) and EPUB files to Markdown pages, inside a parser child (see pdf.py).

A DOCX page ends at a hard page break, and long ones are cut like plain text; a slide is a page (its notes
included), an EPUB chapter is a page. Headings, lists and tables become Markdown. These formats are ZIP
archives: the sizes their entries inflate to are bounded before any parser opens them (zipfile stops every
entry at its declared size, so the declared sizes bound what a parser can inflate).
"""

import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import docx
import ebooklib
import pptx
from bs4 import BeautifulSoup
from docx.table import Table
from docx.text.paragraph import Paragraph
from ebooklib import epub
from markdownify import markdownify
from pptx.enum.shapes import PP_PLACEHOLDER
from pptx.shapes.group import GroupShape

from .errors import (
    DecompressionBombError,
    IngestionError,
    MalformedDocumentError,
    TextTooLongError,
    TooManyPagesError,
)
from .markdown import markdown_table
from .normalize import normalize_text
from .pdf_worker import Send
from .sniff import DOCX, EPUB, PPTX
from .text import paginate

SOURCES = {DOCX: "docx", PPTX: "pptx", EPUB: "epub"}
_NAMES = {DOCX: "Word document", PPTX: "PowerPoint presentation", EPUB: "EPUB book"}
_TITLE_PLACEHOLDERS = {PP_PLACEHOLDER.TITLE, PP_PLACEHOLDER.CENTER_TITLE}
_BULLET_PLACEHOLDERS = {PP_PLACEHOLDER.BODY, PP_PLACEHOLDER.OBJECT}


def office_job(
    send: Send,
    path: Path,
    content_type: str,
    max_pages: int,
    max_chars: int,
    page_chars: int,
    max_inflated_bytes: int,
) -> None:
    """Check the archive, read the document's pages, send them with their source."""
    check_archive(path, max_inflated_bytes)
    try:
        if content_type == DOCX:
            pages = [page for part in docx_parts(path) for page in paginate(part, page_chars)]
        elif content_type == PPTX:
            pages = pptx_slides(path)
        else:
            pages = epub_chapters(path)
    except IngestionError:
        raise
    except Exception as error:  # whatever a parser trips over in a hostile file is a file problem
        raise MalformedDocumentError(
            f"The {_NAMES[content_type]} is damaged and could not be read ({type(error).__name__}: {error})."
        ) from None
    pages = [normalize_text(page, from_pdf=False) for page in pages]
    if len(pages) > max_pages:
        raise TooManyPagesError(f"The document has {len(pages):,} pages; at most {max_pages:,} are accepted.")
    if sum(map(len, pages)) > max_chars:
        raise TextTooLongError.over(max_chars)
    send(("pages", 0, [(page, SOURCES[content_type]) for page in pages]))


def check_archive(path: Path, max_inflated_bytes: int) -> None:
    with zipfile.ZipFile(path) as archive:
        inflated = sum(info.file_size for info in archive.infolist())
    if inflated > max_inflated_bytes:
        raise DecompressionBombError(
            f"The archive's files inflate to {inflated:,} bytes, over the {max_inflated_bytes >> 20:,} MiB "
            "accepted (a zip bomb, or a document too big to read); it was not processed."
        )


def docx_parts(path: Path) -> list[str]:
    """The document's text between hard page breaks, as Markdown."""
    parts: list[list[str]] = [[]]
    for block in docx.Document(str(path)).iter_inner_content():
        if isinstance(block, Table):
            rows = [[cell.text for cell in row.cells] for row in block.rows]
            if rows:
                parts[-1].append(markdown_table(rows))
            continue
        if block._p.xpath("./w:pPr/w:pageBreakBefore") and parts[-1]:
            parts.append([])
        parts[-1].append(_docx_paragraph(block))
        if block._p.xpath(".//w:br[@w:type='page']"):
            parts.append([])
    return ["\n\n".join(block for block in part if block) for part in parts]


def _docx_paragraph(paragraph: Paragraph) -> str:
    text = paragraph.text.strip()
    style = paragraph.style.name if paragraph.style is not None else ""
    if not text:
        return ""
    if style == "Title":
        return f"# {text}"
    if style.startswith("Heading") and style.removeprefix("Heading").strip().isdigit():
        return "#" * min(6, int(style.removeprefix("Heading"))) + f" {text}"
    numbering = paragraph._p.pPr.numPr if paragraph._p.pPr is not None else None
    if style.startswith("List") or numbering is not None:
        level = numbering.ilvl.val if numbering is not None and numbering.ilvl is not None else 0
        marker = "1." if "Number" in style else "-"
        return "  " * level + f"{marker} {text}"
    return text


def pptx_slides(path: Path) -> list[str]:
    """Each slide's title, text, tables and notes, as Markdown."""
    slides = []
    for slide in pptx.Presentation(str(path)).slides:
        blocks = list(_pptx_blocks(slide.shapes))
        notes = slide.notes_slide.notes_text_frame if slide.has_notes_slide else None
        if notes is not None and notes.text.strip():
            blocks.append(f"Notes:\n{notes.text.strip()}")
        slides.append("\n\n".join(blocks))
    return slides


def _pptx_blocks(shapes: Iterable) -> Iterator[str]:
    for shape in shapes:
        if isinstance(shape, GroupShape):
            yield from _pptx_blocks(shape.shapes)
        elif shape.has_table:
            yield markdown_table([[cell.text for cell in row.cells] for row in shape.table.rows])
        elif shape.has_text_frame and shape.text_frame.text.strip():
            placeholder = shape.placeholder_format.type if shape.is_placeholder else None
            if placeholder in _TITLE_PLACEHOLDERS:
                yield "# " + " ".join(shape.text_frame.text.split())
            elif placeholder in _BULLET_PLACEHOLDERS:
                yield "\n".join(
                    "  " * paragraph.level + f"- {paragraph.text.strip()}"
                    for paragraph in shape.text_frame.paragraphs
                    if paragraph.text.strip()
                )
            else:
                yield shape.text_frame.text.strip()


def epub_chapters(path: Path) -> list[str]:
    """Each chapter (spine document) with text, as Markdown."""
    book = epub.read_epub(str(path), options={"ignore_ncx": True})
    chapters = []
    for item_id, _ in book.spine:
        item = book.get_item_with_id(item_id)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        body = BeautifulSoup(item.get_content(), "lxml").body
        if body is None:
            continue
        text = markdownify(str(body), heading_style="ATX", bullets="-", strip=["a", "img"])
        if text.strip():
            chapters.append(text)
    return chapters
