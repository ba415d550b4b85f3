"""Word, PowerPoint and EPUB files made with the libraries that read them: Markdown pages, and bad input."""

import io
import zipfile
from pathlib import Path

import docx
import pptx
import pytest
from docx.enum.text import WD_BREAK
from ebooklib import epub
from pptx.util import Inches

from docproc.ingestion import (
    DecompressionBombError,
    MalformedDocumentError,
    NoTextError,
    ParserLimits,
    TruncatedDocumentError,
    extract,
)
from docproc.ingestion.sniff import DOCX, EPUB, PPTX


def make_docx(path: Path) -> Path:
    document = docx.Document()
    document.add_heading("Annual report", level=0)
    document.add_heading("Finances", level=1)
    document.add_paragraph("Revenue grew in 2025.")
    document.add_paragraph("Panels", style="List Bullet")
    document.add_paragraph("Batteries", style="List Bullet")
    document.add_paragraph("First step", style="List Number")
    table = document.add_table(rows=3, cols=2)
    for row, cells in zip(table.rows, [("Year", "Revenue"), ("2024", "310"), ("2025", "412")], strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    document.add_paragraph("Before the break.").add_run().add_break(WD_BREAK.PAGE)
    document.add_heading("Plans", level=2)
    document.add_paragraph("A second battery in 2026.")
    document.save(path)
    return path


def make_pptx(path: Path) -> Path:
    presentation = pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])  # title and content
    slide.shapes.title.text = "Solar cooperative"
    body = slide.placeholders[1].text_frame
    body.text = "Grew to 402 members"
    detail = body.add_paragraph()
    detail.text = "From 310"
    detail.level = 1
    slide.notes_slide.notes_text_frame.text = "Mention the new board."
    second = presentation.slides.add_slide(presentation.slide_layouts[5])  # title only
    second.shapes.title.text = "Money"
    table = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    for (row, column), text in {(0, 0): "Year", (0, 1): "Revenue", (1, 0): "2025", (1, 1): "412"}.items():
        table.cell(row, column).text = text
    presentation.save(path)
    return path


def make_epub(path: Path) -> Path:
    book = epub.EpubBook()
    book.set_identifier("test-book")
    book.set_title("Cooperatives")
    book.set_language("en")
    chapters = []
    for number, body in [
        (1, "<h1>Beginnings</h1><p>Forty-two households.</p><ul><li>Roofs</li><li>Panels</li></ul>"),
        (2, "<h2>Growth</h2><p>Four hundred members by 2025.</p>"),
    ]:
        chapter = epub.EpubHtml(title=f"Chapter {number}", file_name=f"chapter{number}.xhtml", lang="en")
        chapter.content = f"<html><body>{body}</body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.spine = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    epub.write_epub(str(path), book)
    return path


def test_docx_headings_lists_and_tables_as_markdown_pages(tmp_path: Path) -> None:
    document = extract(make_docx(tmp_path / "report.bin"))
    assert document.content_type == DOCX
    assert [(page.number, page.source) for page in document.pages] == [(1, "docx"), (2, "docx")]
    first, second = (page.text for page in document.pages)
    assert first.startswith("# Annual report\n\n# Finances\n\nRevenue grew in 2025.")
    assert "- Panels\n\n- Batteries\n\n1. First step" in first
    assert "| Year | Revenue |\n| --- | --- |\n| 2024 | 310 |\n| 2025 | 412 |" in first
    assert first.endswith("Before the break.")
    assert second == "## Plans\n\nA second battery in 2026."


def test_pptx_slides_are_pages_with_their_notes(tmp_path: Path) -> None:
    document = extract(make_pptx(tmp_path / "deck.bin"))
    assert document.content_type == PPTX
    assert [(page.number, page.source) for page in document.pages] == [(1, "pptx"), (2, "pptx")]
    assert document.pages[0].text == (
        "# Solar cooperative\n\n- Grew to 402 members\n  - From 310\n\nNotes:\nMention the new board."
    )
    assert document.pages[1].text == "# Money\n\n| Year | Revenue |\n| --- | --- |\n| 2025 | 412 |"


def test_epub_chapters_are_pages(tmp_path: Path) -> None:
    document = extract(make_epub(tmp_path / "book.bin"))
    assert document.content_type == EPUB
    assert [(page.number, page.source) for page in document.pages] == [(1, "epub"), (2, "epub")]
    assert document.pages[0].text == "# Beginnings\n\nForty-two households.\n\n- Roofs\n- Panels"
    assert document.pages[1].text == "## Growth\n\nFour hundred members by 2025."


def rewritten(path: Path, replace: dict[str, bytes]) -> bytes:
    """The archive at `path` with some entries' bytes replaced (or added)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info, replace.pop(info.filename, None) or source.read(info))
        for name, data in replace.items():
            target.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("make", [make_docx, make_pptx, make_epub], ids=["docx", "pptx", "epub"])
def test_truncated_and_damaged_archives_are_refused(tmp_path: Path, make) -> None:
    whole = make(tmp_path / "whole.bin").read_bytes()
    (tmp_path / "half.bin").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(TruncatedDocumentError) as raised:
        extract(tmp_path / "half.bin")
    assert raised.value.code == "truncated_document"
    main_part = {
        make_docx: "word/document.xml",
        make_pptx: "ppt/presentation.xml",
        make_epub: "EPUB/content.opf",
    }
    (tmp_path / "damaged.bin").write_bytes(rewritten(tmp_path / "whole.bin", {main_part[make]: b"<not xml"}))
    with pytest.raises(MalformedDocumentError) as raised:
        extract(tmp_path / "damaged.bin")
    assert raised.value.code == "malformed_document" and raised.value.status == 422


def test_zip_bomb_inside_an_archive_is_refused_before_parsing(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "report.docx")
    (tmp_path / "bomb.docx").write_bytes(rewritten(path, {"word/media/zeros.bin": bytes(8 << 20)}))
    assert (tmp_path / "bomb.docx").stat().st_size < 100_000
    with pytest.raises(DecompressionBombError) as raised:
        extract(tmp_path / "bomb.docx", limits=ParserLimits(max_inflated_archive_bytes=4 << 20))
    assert raised.value.code == "decompression_bomb"


def test_document_without_text(tmp_path: Path) -> None:
    docx.Document().save(tmp_path / "empty.docx")
    with pytest.raises(NoTextError):
        extract(tmp_path / "empty.docx")
