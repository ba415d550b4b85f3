"""Ingestion beyond text layers, beside the born-digital PDF figure: OCR accuracy and speed, and the speed of
Word and PowerPoint files.

OCR: corpus pages whose text layer has at least 200 characters are rendered with pypdfium2 at the DPI the
service uses, read back by each engine, and compared with the text layer: the character error rate is the
edit distance over the reference's length, whitespace runs counted as one space. Engines, one thread each:
Tesseract as the service runs it (docproc.ingestion.ocr.recognize), and RapidOCR (PP-OCRv4 models from its
wheel; `pip install '.[bench]'`) for comparison. "extract, scanned PDF" reads an image-only PDF of the same
renders the service's way (parser children, limits) and scores it the same.
Office: DOCX and PPTX files generated with python-docx / python-pptx (a heading, two paragraphs, a list and a
table per page or slide) read by extract. Born-digital: the corpus's text PDFs concatenated, extract (text
layers, tables) beside bare pypdfium2 in-process, the speed limit.

    python bench/ingestion/bench_formats.py [--ocr-pages 10] [--office-pages 200] [--pdf-pages 300]
"""

import argparse
import importlib.util
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docx
import numpy as np
import pptx
import pypdf
import pypdfium2 as pdfium
from PIL import Image
from pptx.util import Inches
from rapidfuzz.distance import Levenshtein

from docproc.ingestion import OcrMode, ParserLimits, extract
from docproc.ingestion.ocr import OCR_DPI, recognize

# The corpus lies beside the checkout; DOCPROC_TEST_CORPUS points elsewhere (as for the tests).
CORPUS = Path(
    os.environ.get("DOCPROC_TEST_CORPUS", Path(__file__).resolve().parents[3] / "shared" / "corpus" / "pdf")
)
TABLE = [("Year", "Members", "Revenue"), ("2024", "310", "388"), ("2025", "402", "412")]
LARGE_DOCUMENT_PARTS = [
    "009-pdflatex-geotopo/GeoTopo-komprimiert.pdf",
    "004-pdflatex-4-pages/pdflatex-4-pages.pdf",
    "026-latex-multicolumn/multicolumn.pdf",
    "011-google-doc-document/google-doc-document.pdf",
]
MIN_REFERENCE_CHARS = 200
COLUMNS = "{:<30} {:>6} {:>9} {:>8} {:>7}"
HEADER = COLUMNS.format("what", "pages", "seconds", "pages/s", "CER")


def squeezed(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def character_error_rate(texts: list[str], references: list[str]) -> float:
    pairs = [(squeezed(text), squeezed(reference)) for text, reference in zip(texts, references, strict=True)]
    return sum(Levenshtein.distance(a, b) for a, b in pairs) / sum(len(b) for _, b in pairs)


def row(what: str, pages: int, seconds: float, cer: float | None = None) -> str:
    rate = f"{pages / seconds:.2f}"
    return COLUMNS.format(what, pages, f"{seconds:.2f}", rate, "-" if cer is None else f"{cer:.4f}")


def rendered_pages(count: int) -> tuple[list[Image.Image], list[str]]:
    """Up to `count` corpus pages with a text layer, rendered, one or two per file, and their text layers."""
    images, references = [], []
    for entry in json.loads((CORPUS / "files.json").read_text())["data"]:
        path = CORPUS / entry["path"]
        if entry["encrypted"] or not path.exists():
            continue
        try:
            document = pdfium.PdfDocument(path)
        except pdfium.PdfiumError:
            continue
        for index in range(min(2, len(document))):
            text = document[index].get_textpage().get_text_range()
            if len(squeezed(text)) >= MIN_REFERENCE_CHARS and len(images) < count:
                images.append(document[index].render(scale=OCR_DPI / 72).to_pil().convert("RGB"))
                references.append(text)
    return images, references


def rapidocr_engine() -> Callable[[Image.Image], str] | None:
    if importlib.util.find_spec("rapidocr_onnxruntime") is None:
        return None
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)

    def read(image: Image.Image) -> str:
        boxes, _ = engine(np.asarray(image))
        return "\n".join(text for _, text, _ in boxes or [])

    return read


def timed(function: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def office_files(directory: Path, pages: int) -> dict[str, Path]:
    document = docx.Document()
    presentation = pptx.Presentation()
    for number in range(1, pages + 1):
        document.add_heading(f"Section {number}", level=1)
        document.add_paragraph(
            f"Members met on day {number} and reviewed the solar cooperative's accounts. " * 4
        )
        document.add_paragraph("Revenue, costs and the battery project were discussed at length. " * 4)
        for item in ("Panels", "Batteries", "Maintenance"):
            document.add_paragraph(item, style="List Bullet")
        table = document.add_table(rows=3, cols=3)
        for cells, values in zip(table.rows, TABLE, strict=True):
            for cell, value in zip(cells.cells, values, strict=True):
                cell.text = value
        document.paragraphs[-1].add_run().add_break(docx.enum.text.WD_BREAK.PAGE)
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = f"Slide {number}"
        slide.placeholders[1].text_frame.text = "Grew to 402 members\nRevenue 412,000 euros\nA new battery"
        grid = slide.shapes.add_table(3, 3, Inches(1), Inches(5), Inches(6), Inches(1)).table
        for r, c in [(r, c) for r in range(3) for c in range(3)]:
            grid.cell(r, c).text = f"{r}-{c}"
        slide.notes_slide.notes_text_frame.text = "Thank the volunteers."
    paths = {"docx": directory / "report.docx", "pptx": directory / "deck.pptx"}
    document.save(paths["docx"])
    presentation.save(paths["pptx"])
    return paths


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--ocr-pages", type=int, default=10)
    parser.add_argument("--office-pages", type=int, default=200)
    parser.add_argument("--pdf-pages", type=int, default=300)
    parser.add_argument("--engines", default="tesseract,rapidocr", help="OCR engines to compare")
    args = parser.parse_args()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{len(os.sched_getaffinity(0))} CPUs, load average {load} (other work slows every row alike)")
    print(HEADER)
    extract(CORPUS / LARGE_DOCUMENT_PARTS[1])  # start the fork server outside the timings

    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        writer = pypdf.PdfWriter()
        while len(writer.pages) < args.pdf_pages:
            for part in LARGE_DOCUMENT_PARTS:
                writer.append(CORPUS / part)
        writer.write(directory / "large.pdf")
        pages = len(writer.pages)
        seconds, _ = timed(
            lambda: [p.get_textpage().get_text_range() for p in pdfium.PdfDocument(directory / "large.pdf")]
        )
        print(row("born-digital: pypdfium2 bare", pages, seconds), flush=True)
        seconds, _ = timed(lambda: extract(directory / "large.pdf", ocr=OcrMode.off))
        print(row("born-digital: extract", pages, seconds), flush=True)

        images, references = rendered_pages(args.ocr_pages)
        engines = {"tesseract": recognize, "rapidocr": rapidocr_engine()}
        for name, engine in engines.items():
            if name not in args.engines.split(","):
                continue
            label = f"OCR: {name}"
            if engine is None:
                print(f"{label}: not installed (pip install '.[bench]')")
                continue
            seconds, texts = timed(lambda engine=engine: [engine(image) for image in images])
            print(row(label, len(images), seconds, character_error_rate(texts, references)), flush=True)
        images[0].save(directory / "scan.pdf", save_all=True, append_images=images[1:], resolution=OCR_DPI)
        no_deadline = ParserLimits(timeout_s=24 * 3600)  # a loaded machine must not cut the run short
        seconds, scanned = timed(lambda: extract(directory / "scan.pdf", limits=no_deadline))
        texts = [page.text for page in scanned.pages]
        print(row("OCR: extract, scanned PDF", len(images), seconds, character_error_rate(texts, references)))

        for kind, path in office_files(directory, args.office_pages).items():
            seconds, document = timed(lambda path=path: extract(path))
            print(row(f"{kind}: extract", len(document.pages), seconds), flush=True)


if __name__ == "__main__":
    main()
