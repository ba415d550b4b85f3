"""CPU seconds of one PDF parser process (the lead job, one worker, run in this process), so that a busy
machine skews the figures less than wall-clock timings: the cost of the parser's checks against bare
reading. Best of three passes.

    python bench/ingestion/lead_job_cpu.py [--corpus DIR] [--pages 500]
"""

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import pypdf

from docproc.ingestion import IngestionError, pdf_worker

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "pdf"
GEOTOPO = "009-pdflatex-geotopo/GeoTopo-komprimiert.pdf"  # the corpus's one file whose pages draw forms
# bench_pdf.py's large document parts; the others draw images but no forms.
PARTS = [
    GEOTOPO,
    "004-pdflatex-4-pages/pdflatex-4-pages.pdf",
    "026-latex-multicolumn/multicolumn.pdf",
    "011-google-doc-document/google-doc-document.pdf",
]


def cpu_seconds(paths: list[Path], passes: int = 3) -> float:
    best = float("inf")
    for _ in range(passes):
        started = time.process_time()
        for path in paths:
            with contextlib.suppress(IngestionError):  # image-only files: checked and read all the same
                pdf_worker.lead_job(lambda message: None, path, None, 5000, 10**8, 1, 1 << 40, 50_000)
        best = min(best, time.process_time() - started)
    return best


def concatenated(parts: list[Path], pages: int, path: Path) -> Path:
    writer = pypdf.PdfWriter()
    while len(writer.pages) < pages:
        for part in parts:
            writer.append(part)
    writer.write(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--pages", type=int, default=500)
    args = parser.parse_args()
    corpus = [
        args.corpus / entry["path"]
        for entry in json.loads((args.corpus / "files.json").read_text())["data"]
        if not entry["encrypted"] and (args.corpus / entry["path"]).exists()
    ]
    with tempfile.TemporaryDirectory() as directory:
        parts = [args.corpus / part for part in PARTS]
        documents = {
            f"{args.pages} pages, with forms": [
                concatenated(parts, args.pages, Path(directory) / "forms.pdf")
            ],
            f"{args.pages} pages, no forms": [
                concatenated(parts[1:], args.pages, Path(directory) / "plain.pdf")
            ],
            "corpus": corpus,
            "corpus without GeoTopo": [path for path in corpus if not path.match(GEOTOPO)],
        }
        for label, paths in documents.items():
            print(f"{label:<28} {cpu_seconds(paths):6.3f} s", flush=True)


if __name__ == "__main__":
    main()
