"""Content types come from bytes: magic numbers, markup, Markdown signs; never the file name."""

import gzip
import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from docproc.ingestion import EmptyFileError, UnsupportedTypeError, sniff_content_type

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


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
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
        (png_bytes(), "PNG image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(32), "JPEG image"),
        (zip_bytes(), "ZIP archive"),
        (gzip.compress(b"plain text inside"), "GZIP archive"),
    ],
    ids=["png", "jpeg", "zip", "gzip"],
)
def test_binary_formats_are_named_in_the_error(tmp_path: Path, data: bytes, kind: str) -> None:
    with pytest.raises(UnsupportedTypeError, match=kind) as raised:
        sniff(tmp_path, data, "scan.pdf")
    assert raised.value.code == "unsupported_type"


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
