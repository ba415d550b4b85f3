"""Optical character recognition of page images, inside a parser child (never in the calling process).

Tesseract (Debian's `tesseract-ocr`, through pytesseract) was chosen over RapidOCR by measured accuracy and
speed on rendered corpus pages (bench/ingestion/bench_ocr.py): RapidOCR's bundled PP-OCR models drop spaces
and whole lines of English text and take about ten times the CPU. Tesseract runs as a child of the parser
child, so it inherits its memory and CPU-time limits; one thread, since a parser child is one CPU.
"""

import os
from enum import StrEnum

import pytesseract
from PIL import Image

from .errors import OcrUnavailableError
from .normalize import normalize_text

# Pages are rendered at this resolution for OCR: Tesseract reads body text best at 200-300 dpi.
OCR_DPI = 200
# Trained data installed with Debian's tesseract-ocr.
OCR_LANGUAGES = "eng"


class OcrMode(StrEnum):
    """The upload option `ocr`: which pages are recognised from their image."""

    auto = "auto"  # pages without a text layer (and images)
    force = "force"  # every page, its text layer ignored
    off = "off"  # none: a page without a text layer stays empty


def recognize(image: Image.Image) -> str:
    """The text in `image` in reading order, paragraphs apart; "" when it shows none."""
    os.environ["OMP_THREAD_LIMIT"] = "1"  # read by the tesseract process this starts
    try:
        text = pytesseract.image_to_string(image.convert("RGB"), lang=OCR_LANGUAGES)
    except pytesseract.TesseractNotFoundError:
        raise OcrUnavailableError(
            "OCR is not installed on this server (the tesseract-ocr package); upload with ocr=off, or a "
            "file with a text layer."
        ) from None
    return normalize_text(text, from_pdf=True)
