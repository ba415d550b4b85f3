"""Content types come from bytes: magic numbers, markup, Markdown signs; never the file name."""

import gzip
import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from docproc.ingestion import (
    EmptyFileError,
    MalformedDocumentError,
    TruncatedDocumentError,
    UnsupportedTypeError,
    sniff_content_type,
)
from docproc.ingestion.sniff import DOCX, EPUB, PPTX

from .pdfs import FOUR_PAGES, corpus_file


def png_bytes() -> bytes:
    """A real 1x1 grey PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + chunk(b"IEND", b"")
    )


def zip_bytes(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "<part/>")
    return buffer.getvalue()


def sniff(tmp_path: Path, data: bytes, name: str = "upload.txt") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return sniff_content_type(path)


def test_pdf_by_magic_even_after_leading_junk(tmp_path: Path) -> None:
    pdf = corpus_file(FOUR_PAGES).read_bytes()
    assert sniff(tmp_path, pdf, "report.txt") == "application/pdf"
    assert sniff(tmp_path, b"junk from a mail gateway\n" * 20 + pdf) == "application/pdf"
    assert sniff(tmp_path, b"x" * 2000 + b"%PDF-1.4 is mentioned here") == "text/plain"


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"GIF89a" + bytes(32), "GIF image"),
        (zip_bytes("notes.txt"), "ZIP archive"),
        (zip_bytes("xl/workbook.xml"), "Excel workbook"),
        (gzip.compress(b"plain text inside"), "GZIP archive"),
    ],
    ids=["gif", "zip", "xlsx", "gzip"],
)
def test_binary_formats_are_named_in_the_error(tmp_path: Path, data: bytes, kind: str) -> None:
    with pytest.raises(UnsupportedTypeError, match=kind) as raised:
        sniff(tmp_path, data, "scan.pdf")
    assert raised.value.code == "unsupported_type"


def test_images_and_office_formats_by_their_bytes(tmp_path: Path) -> None:
    assert sniff(tmp_path, png_bytes(), "scan.pdf") == "image/png"
    assert sniff(tmp_path, b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(32)) == "image/jpeg"
    assert sniff(tmp_path, b"II*\x00" + bytes(32)) == sniff(tmp_path, b"MM\x00*" + bytes(32)) == "image/tiff"
    assert sniff(tmp_path, zip_bytes("[Content_Types].xml", "word/document.xml")) == DOCX
    assert sniff(tmp_path, zip_bytes("[Content_Types].xml", "ppt/presentation.xml")) == PPTX
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip")
        archive.writestr("META-INF/container.xml", "<container/>")
    assert sniff(tmp_path, buffer.getvalue(), "book.txt") == EPUB


def test_damaged_and_truncated_archives(tmp_path: Path) -> None:
    docx = zip_bytes("[Content_Types].xml", "word/document.xml")
    with pytest.raises(TruncatedDocumentError):
        sniff(tmp_path, docx[: len(docx) // 2])
    directory = docx.rindex(b"PK\x01\x02")  # the central directory's first entry, damaged
    with pytest.raises(MalformedDocumentError) as raised:
        sniff(tmp_path, docx[:directory] + b"XX" + docx[directory + 2 :])
    assert raised.value.code == "malformed_document"


def test_unknown_binary_data(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedTypeError, match="binary data"):
        sniff(tmp_path, bytes(range(256)) * 8)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(EmptyFileError) as raised:
        sniff(tmp_path, b"")
    assert raised.value.code == "empty_file"


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html><html><body>Hi</body></html>",
        b"\n  <html lang='en'><p>Hi</p></html>",
        b"<!-- generated --> <HEAD><TITLE>x</TITLE></HEAD>",
        b"<p>A fragment</p>",
        "<!doctype html><p>UTF-16 with a byte-order mark</p>".encode("utf-16"),
    ],
)
def test_html(tmp_path: Path, data: bytes) -> None:
    assert sniff(tmp_path, data, "page.md") == "text/html"


def test_text_mentioning_tags_is_not_html(tmp_path: Path) -> None:
    assert sniff(tmp_path, b"Use the <html> element to start a page.") == "text/plain"


MARKDOWN = b"""# Quarterly report

Revenue grew in **every** region:

- North: 12%
- South: 9%

See [the dashboard](https://example.com/dash) for details.
"""


def test_markdown_by_its_signs(tmp_path: Path) -> None:
    assert sniff(tmp_path, MARKDOWN) == "text/markdown"
    assert sniff(tmp_path, b"Intro\n\n```python\nprint(1)\n```\n\n> quoted\n") == "text/markdown"


def test_prose_with_a_single_markdown_like_sign_is_plain_text(tmp_path: Path) -> None:
    prose = b"Dear team,\n\nthe meeting moves to Friday. Agenda:\n- budget\n- hiring\n\nBest, Ana\n"
    assert sniff(tmp_path, prose) == "text/plain"
