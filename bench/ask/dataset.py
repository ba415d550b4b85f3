"""The questions of bench/ask/questions.json with their documents' pages, checked against the text.

Documents: corpus PDFs (DOCPROC_TEST_CORPUS, as for the tests), the sample report (``sample:NAME``: in
docproc/samples) and ``planted``: a generated long text (bench/quality/documents.py's town chronicle) with
facts planted at given depths, extracted as the service extracts an uploaded .txt file.
"""

import json
import re
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.quality.documents import CORPUS, long_text  # noqa: E402
from docproc.ingestion import Page, extract  # noqa: E402

QUESTIONS = Path(__file__).with_name("questions.json")
PLANTED = "planted"


@dataclass(frozen=True)
class Question:
    file: str
    question: str
    answer: str
    #: Every page whose text holds the answer (the labelled one first).
    pages: tuple[int, ...]


def normalized(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def holds(page_text: str, answer: str) -> bool:
    return normalized(answer) in normalized(page_text)


@cache
def pages_of(file: str, planted_chars: int) -> tuple[Page, ...]:
    if file == PLANTED:
        return tuple(planted_document(planted_chars))
    if file.startswith("sample:"):
        return tuple(extract(REPO / "docproc" / "samples" / file.removeprefix("sample:")).pages)
    return tuple(extract(CORPUS / file).pages)


def planted_text(target_chars: int) -> str:
    """The long text with each planted fact inserted as a paragraph of its own at its depth."""
    paragraphs = long_text(target_chars).split("\n\n")
    facts = json.loads(QUESTIONS.read_text())["planted"]
    for fact in sorted(facts, key=lambda item: item["depth"], reverse=True):
        paragraphs.insert(round(fact["depth"] * len(paragraphs)), fact["fact"])
    return "\n\n".join(paragraphs)


def planted_document(target_chars: int) -> list[Page]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "planted.txt"
        path.write_text(planted_text(target_chars))
        return extract(path).pages


def questions(planted_chars: int = 400_000) -> list[Question]:
    """All questions, planted ones included (a document of about planted_chars characters); each answer is
    checked to be on its labelled page."""
    data = json.loads(QUESTIONS.read_text())
    items = [(item["file"], item["question"], item["answer"], item["pages"][0]) for item in data["questions"]]
    items += [(PLANTED, item["question"], item["answer"], None) for item in data["planted"]]
    found = []
    for file, question, answer, labelled in items:
        pages = [page.number for page in pages_of(file, planted_chars) if holds(page.text, answer)]
        if labelled is not None and labelled not in pages:
            raise ValueError(f"{file}: {answer!r} is not on page {labelled} (found on {pages})")
        if not pages:
            raise ValueError(f"{file}: {answer!r} is on no page")
        ordered = [labelled, *(p for p in pages if p != labelled)] if labelled else pages
        found.append(Question(file, question, answer, tuple(ordered)))
    return found


if __name__ == "__main__":
    for item in questions():
        print(f"{item.file[:40]:40} p{','.join(map(str, item.pages)):12} {item.answer}")
