"""OCR of scanned PDF pages and of PNG, JPEG and TIFF images, in the parser children; the `ocr` option."""

import io
import re
import struct
import zlib
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw, ImageFont
from rapidfuzz.distance import Levenshtein

from docproc.ingestion import (
    DecompressionBombError,
    MalformedDocumentError,
    NoTextError,
    NoTextLayerError,
    OcrMode,
    OcrOffError,
    ParserLimits,
    extract,
)
from tests.conftest import SAMPLE_PDF

from .pdfs import FOUR_PAGES, corpus_file

# Character error rate a page rendered at 200 dpi and read back may have (Tesseract measures 0.0-0.03 on the
# corpus's body text: bench/ingestion/bench_ocr.py).
MAX_CHARACTER_ERROR_RATE = 0.03
LINES = ["The solar cooperative met in May.", "Revenue reached 412,000 euros."]


def character_error_rate(text: str, reference: str) -> float:
    """Edit distance over the reference's length, whitespace runs counted as one space."""
    text, reference = (re.sub(r"\s+", " ", value).strip() for value in (text, reference))
    return Levenshtein.distance(text, reference) / len(reference)


def text_image(lines: list[str]) -> Image.Image:
    image = Image.new("L", (900, 80 + 80 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((40, 40 + 80 * index), line, fill="black", font=ImageFont.load_default(size=36))
    return image


def test_scanned_pdf_page_is_read_by_ocr(tmp_path: Path) -> None:
    page = pdfium.PdfDocument(SAMPLE_PDF)[0]
    reference = page.get_textpage().get_text_range()
    # A scan: the rendered page as the only content of an image-only PDF.
    page.render(scale=200 / 72).to_pil().convert("L").save(tmp_path / "scan.pdf", resolution=200)

    document = extract(tmp_path / "scan.pdf")
    assert [(page.number, page.source) for page in document.pages] == [(1, "ocr")]
    assert character_error_rate(document.pages[0].text, reference) < MAX_CHARACTER_ERROR_RATE

    with pytest.raises(NoTextLayerError):
        extract(tmp_path / "scan.pdf", ocr=OcrMode.off)


def test_force_reads_every_page_by_ocr_and_auto_keeps_text_layers() -> None:
    path = corpus_file("001-trivial/minimal-document.pdf")
    text_layer = extract(path).pages[0]
    assert text_layer.source == "text_layer"
    recognized = extract(path, ocr=OcrMode.force).pages[0]
    assert recognized.source == "ocr"
    assert character_error_rate(recognized.text, text_layer.text) < MAX_CHARACTER_ERROR_RATE


def test_blank_pages_are_not_sent_to_ocr() -> None:
    # Four born-digital pages: every page keeps its text layer in auto mode.
    assert {page.source for page in extract(corpus_file(FOUR_PAGES)).pages} == {"text_layer"}


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_images_are_read_by_ocr(tmp_path: Path, image_format: str) -> None:
    path = tmp_path / "photo.bin"
    text_image(LINES).save(path, format=image_format)
    document = extract(path)
    assert document.content_type == f"image/{image_format.lower()}"
    assert [(page.number, page.source) for page in document.pages] == [(1, "ocr")]
    assert character_error_rate(document.pages[0].text, " ".join(LINES)) < MAX_CHARACTER_ERROR_RATE


def test_multi_page_tiff_gives_a_page_per_frame(tmp_path: Path) -> None:
    first, second = text_image(LINES[:1]), text_image(LINES[1:])
    first.save(tmp_path / "scan.tiff", format="TIFF", save_all=True, append_images=[second])
    document = extract(tmp_path / "scan.tiff")
    assert document.content_type == "image/tiff"
    assert [page.number for page in document.pages] == [1, 2]
    for page, line in zip(document.pages, LINES, strict=True):
        assert character_error_rate(page.text, line) < MAX_CHARACTER_ERROR_RATE


def test_image_without_text(tmp_path: Path) -> None:
    Image.new("RGB", (400, 300), "white").save(tmp_path / "blank.png")
    with pytest.raises(NoTextError) as raised:
        extract(tmp_path / "blank.png")
    assert raised.value.code == "no_text"
    with pytest.raises(OcrOffError):
        extract(tmp_path / "blank.png", ocr=OcrMode.off)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares its size and holds almost no pixels: what a decompression bomb looks like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_image_is_refused_before_decoding(tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(png_header_only(100_000, 100_000))
    with pytest.raises(DecompressionBombError, match="100,000 x 100,000"):
        extract(tmp_path / "bomb.png")
    limits = ParserLimits(max_image_pixels=300 * 100)
    text_image(LINES).save(tmp_path / "big.png")
    with pytest.raises(DecompressionBombError):
        extract(tmp_path / "big.png", limits=limits)


def test_truncated_image(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    text_image(LINES).save(buffer, format="PNG")
    (tmp_path / "half.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(MalformedDocumentError) as raised:
        extract(tmp_path / "half.png")
    assert raised.value.status == 422
