"""Test inputs: the shared corpus of real PDFs, and hostile PDFs built with pypdf."""

import json
import zlib
from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, NameObject, NumberObject, StreamObject

from tests.conftest import CORPUS

CORPUS_PASSWORD = "openpassword"  # corpus README: the LibreOffice test file's password
ENCRYPTED = "005-libreoffice-writer-password/libreoffice-writer-password.pdf"
FOUR_PAGES = "004-pdflatex-4-pages/pdflatex-4-pages.pdf"
BIG = "009-pdflatex-geotopo/GeoTopo-komprimiert.pdf"  # 117 pages, enough for several workers


def corpus_entries() -> list[dict]:
    """files.json's entries (path, pages, encrypted, ...); empty when the corpus is absent."""
    listing = CORPUS / "files.json"
    return json.loads(listing.read_text())["data"] if listing.exists() else []


def corpus_file(relative: str) -> Path:
    path = CORPUS / relative
    if not path.exists():
        pytest.skip(f"corpus file {relative} is absent")
    return path


def zlib_stream(data_chunks: list[bytes] | bytes, repeat: int = 1) -> bytes:
    """zlib data for the chunks concatenated, `repeat` times, without holding the inflated bytes."""
    compressor = zlib.compressobj(1)
    chunks = [data_chunks] if isinstance(data_chunks, bytes) else data_chunks
    return (
        b"".join(compressor.compress(chunk) for _ in range(repeat) for chunk in chunks) + compressor.flush()
    )


def write_pdf(
    path: Path,
    compressed_content: bytes,
    *,
    pages: int = 1,
    content_repeats: int = 1,
    white_image_size: tuple[int, int] | None = None,
) -> Path:
    """A PDF of `pages` pages, each drawing the same FlateDecode content stream `content_repeats` times,
    with Helvetica as /F1 and, given its (width, height), a white RGB FlateDecode image as /Im1."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    resources = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    if white_image_size is not None:
        width, height = white_image_size
        image = StreamObject()
        image.set_data(zlib_stream(b"\xff" * (3 * width), repeat=height))
        image.update(
            {
                NameObject("/Type"): NameObject("/XObject"),
                NameObject("/Subtype"): NameObject("/Image"),
                NameObject("/Width"): NumberObject(width),
                NameObject("/Height"): NumberObject(height),
                NameObject("/ColorSpace"): NameObject("/DeviceRGB"),
                NameObject("/BitsPerComponent"): NumberObject(8),
                NameObject("/Filter"): NameObject("/FlateDecode"),
            }
        )
        resources[NameObject("/XObject")] = DictionaryObject({NameObject("/Im1"): writer._add_object(image)})
    stream = StreamObject()
    stream.set_data(compressed_content)
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    content = writer._add_object(stream)
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = resources
        page[NameObject("/Contents")] = ArrayObject([content] * content_repeats)
    with path.open("wb") as file:
        writer.write(file)
    return path


def text_operators(words: str, lines: int = 1) -> bytes:
    """A content stream showing `words` on `lines` lines."""
    shown = b"".join(b"(%s) Tj T*\n" % words.encode() for _ in range(lines))
    return b"BT /F1 10 Tf 12 TL 72 720 Td\n" + shown + b"ET\n"


def _font_resources(writer: PdfWriter) -> DictionaryObject:
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    return DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )


def write_nested_forms_pdf(path: Path, *, depth: int, fanout: int) -> Path:
    """A one-page PDF whose page draws form /X `fanout` times, each form drawing the next one `fanout` times,
    `depth` forms deep, the last showing a word: fanout ** depth draws from a file of a few KB."""
    writer = PdfWriter()
    inner = None
    for _ in range(depth):
        form = StreamObject()
        form.set_data(text_operators("deep") if inner is None else b"/X Do\n" * fanout)
        resources = _font_resources(writer)
        if inner is not None:
            resources[NameObject("/XObject")] = DictionaryObject({NameObject("/X"): inner})
        form.update(
            {
                NameObject("/Type"): NameObject("/XObject"),
                NameObject("/Subtype"): NameObject("/Form"),
                NameObject("/BBox"): ArrayObject([NumberObject(n) for n in (0, 0, 612, 792)]),
                NameObject("/Resources"): resources,
            }
        )
        inner = writer._add_object(form)
    page = writer.add_blank_page(612, 792)
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/XObject"): DictionaryObject({NameObject("/X"): inner})}
    )
    content = StreamObject()
    content.set_data(b"/X Do\n" * fanout)
    page[NameObject("/Contents")] = writer._add_object(content)
    with path.open("wb") as file:
        writer.write(file)
    return path


def write_many_streams_pdf(path: Path, *, streams: int, stream_bytes: int) -> Path:
    """A PDF of `streams` pages, each with its own FlateDecode content stream of one line of text padded with
    zeros to `stream_bytes` inflated (the compressed data is built once and shared)."""
    writer = PdfWriter()
    resources = _font_resources(writer)
    shown = text_operators("padded")
    compressed = zlib_stream([shown, bytes(stream_bytes - len(shown))])
    for _ in range(streams):
        stream = StreamObject()
        stream.set_data(compressed)
        stream[NameObject("/Filter")] = NameObject("/FlateDecode")
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = resources
        page[NameObject("/Contents")] = writer._add_object(stream)
    with path.open("wb") as file:
        writer.write(file)
    return path
