"""PDF text extraction speed and text agreement: pypdf alone vs docproc.ingestion.extract, with bare
pypdfium2 in-process (no isolation, checks or second opinion) for reference: the speed limit.

Two document sets: the shared corpus of real PDFs (every unencrypted file pypdf can open, repeated), and one
large born-digital PDF built by concatenating the corpus's text PDFs. Agreement with pypdf's text (both
normalised alike) is a difflib similarity ratio per page, weighted by page length: over words, and over the
characters shown (whitespace left out, so that a line break or a space between math symbols counts for
nothing).

    python bench/ingestion/bench_pdf.py [--repeat 3] [--pages 500]
"""

import argparse
import difflib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pypdf
import pypdfium2 as pdfium

from docproc.ingestion import IngestionError, OcrMode, extract
from docproc.ingestion.normalize import normalize_text

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "pdf"
# Text PDFs the large document is built from, the long one first.
LARGE_DOCUMENT_PARTS = [
    "009-pdflatex-geotopo/GeoTopo-komprimiert.pdf",
    "004-pdflatex-4-pages/pdflatex-4-pages.pdf",
    "026-latex-multicolumn/multicolumn.pdf",
    "011-google-doc-document/google-doc-document.pdf",
]

PageTexts = list[str]


COLUMNS = "{:<26} {:<20} {:>6} {:>8} {:>8} {:>7} {:>7}"
HEADER = COLUMNS.format("documents", "extractor", "pages", "seconds", "pages/s", "words", "chars")


@dataclass
class Run:
    documents: str
    extractor: str
    pages: int
    seconds: float
    word_agreement: float | None
    char_agreement: float | None

    def row(self) -> str:
        agreements = [
            "-" if value is None else f"{value:.4f}" for value in (self.word_agreement, self.char_agreement)
        ]
        rate = f"{self.pages / self.seconds:.1f}"
        return COLUMNS.format(
            self.documents, self.extractor, self.pages, f"{self.seconds:.2f}", rate, *agreements
        )


def pypdf_pages(path: Path) -> PageTexts:
    return [normalize_text(page.extract_text(), from_pdf=True) for page in pypdf.PdfReader(path).pages]


def pdfium_pages(path: Path) -> PageTexts:
    document = pdfium.PdfDocument(path)
    return [
        normalize_text(document[index].get_textpage().get_text_range(), from_pdf=True)
        for index in range(len(document))
    ]


def ours(workers: int | None) -> Callable[[Path], PageTexts]:
    def pages(path: Path) -> PageTexts:
        try:
            return [page.text for page in extract(path, workers=workers, ocr=OcrMode.off).pages]
        except IngestionError:  # image-only corpus files: read, but no text to return
            return []

    return pages


def agreement(
    results: list[PageTexts], reference: list[PageTexts], tokens: Callable[[str], list[str]]
) -> float:
    """Similarity of each page's tokens with the reference page's, weighted by the longer one's length; a page
    one side lacks scores 0, a page blank on both sides does not count."""
    weighted = total = 0.0
    for pages, reference_pages in zip(results, reference, strict=True):
        for index, reference_page in enumerate(reference_pages):
            expected = tokens(reference_page)
            ours = tokens(pages[index]) if index < len(pages) else []
            weight = max(len(expected), len(ours))
            if weight:
                weighted += weight * difflib.SequenceMatcher(None, ours, expected, autojunk=False).ratio()
                total += weight
    return weighted / total


def shown_characters(text: str) -> list[str]:
    return list("".join(text.split()))


def measure(
    label: str, name: str, extractor: Callable[[Path], PageTexts], paths: list[Path], page_counts: list[int],
    repeat: int, reference: list[PageTexts] | None,
) -> tuple[Run, list[PageTexts]]:  # fmt: skip
    started = time.perf_counter()
    for _ in range(repeat):
        results = [extractor(path) for path in paths]
    seconds = time.perf_counter() - started
    words = chars = None
    if reference is not None:
        words, chars = (
            agreement(results, reference, str.split),
            agreement(results, reference, shown_characters),
        )
    return Run(label, name, sum(page_counts) * repeat, seconds, words, chars), results


def corpus_documents() -> tuple[list[Path], list[int]]:
    """Unencrypted corpus PDFs that pypdf can open, with their page counts."""
    paths, page_counts = [], []
    for entry in json.loads((CORPUS / "files.json").read_text())["data"]:
        path = CORPUS / entry["path"]
        if entry["encrypted"] or not path.exists():
            continue
        try:
            page_count = len(pypdf.PdfReader(path).pages)
        except pypdf.errors.PyPdfError:
            continue  # unreadable by the baseline: nothing to compare
        paths.append(path)
        page_counts.append(page_count)
    return paths, page_counts


def build_large_document(directory: Path, target_pages: int) -> Path:
    writer = pypdf.PdfWriter()
    while len(writer.pages) < target_pages:
        for part in LARGE_DOCUMENT_PARTS:
            writer.append(CORPUS / part)
    path = directory / "large.pdf"
    writer.write(path)
    return path


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--repeat", type=int, default=3, help="passes over the corpus")
    parser.add_argument("--pages", type=int, default=500, help="pages of the large document (at least)")
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    extractors = [
        ("pypdf", pypdf_pages),
        ("pypdfium2 in-process", pdfium_pages),
        ("extract 1 worker", ours(1)),
        (f"extract {cpus} workers", ours(None)),
    ]
    extract(CORPUS / LARGE_DOCUMENT_PARTS[1])  # start the fork server outside the timings

    with tempfile.TemporaryDirectory() as directory:
        large = build_large_document(Path(directory), args.pages)
        corpus_paths, corpus_pages = corpus_documents()
        document_sets = [
            (f"corpus ({len(corpus_paths)} files) x{args.repeat}", corpus_paths, corpus_pages, args.repeat),
            ("large born-digital PDF", [large], [len(pypdf.PdfReader(large).pages)], 1),
        ]
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"{cpus} CPUs, load average {load} (other work on the machine slows every row alike)")
        print(HEADER)
        for label, paths, page_counts, repeat in document_sets:
            reference = None
            for name, extractor in extractors:
                run, results = measure(label, name, extractor, paths, page_counts, repeat, reference)
                reference = reference or results  # pypdf's pages, the first extractor's
                print(run.row(), flush=True)


if __name__ == "__main__":
    main()
