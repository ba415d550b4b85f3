"""The benchmark's documents: corpus PDFs with text, the sample report, generated ones with known facts."""

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from docproc.ingestion import Page, extract

REPO = Path(__file__).resolve().parents[2]
# As for the tests: beside the checkout, or where DOCPROC_TEST_CORPUS says.
CORPUS = Path(os.environ.get("DOCPROC_TEST_CORPUS", REPO.parent / "shared" / "corpus" / "pdf"))
# Corpus PDFs with at least a hundred words of text and at most a few pages (the abstractive way is slow).
CORPUS_FILES = [
    "011-google-doc-document/google-doc-document.pdf",
    "021-pdfa/crazyones-pdfa.pdf",
    "026-latex-multicolumn/multicolumn.pdf",
    "006-pdflatex-outline/pdflatex-outline.pdf",
    "004-pdflatex-4-pages/pdflatex-4-pages.pdf",
]
SAMPLE_FACTS = [
    "2019", "402", "Ingrid Solberg", "2,140", "412,000", "103,000", "1.26 million", "600 kilowatt-hours",
    "390,000", "79 percent",
]  # fmt: skip


@dataclass
class Document:
    name: str
    pages: list[Page]
    #: Strings a good summary contains (figures and names the document is about); empty: none known.
    facts: list[str] = field(default_factory=list)


# A generated town report: each page is about one service, opens with its key figure, and goes on with detail.
_SERVICES = [
    ("water works", "delivered {n} million cubic metres of drinking water", "pipes", "leaks"),
    ("bus company", "carried {n} million passengers", "buses", "routes"),
    ("library", "lent {n} thousand books", "readers", "branches"),
    ("fire brigade", "answered {n} hundred calls", "engines", "stations"),
    ("school board", "enrolled {n} thousand pupils", "teachers", "classrooms"),
    ("parks office", "planted {n} thousand trees", "gardeners", "playgrounds"),
]
_DETAIL = [
    "The {service} employed {a} staff and ran {b} {thing}, {c} more than the year before.",
    "Spending on {thing} rose to {a} thousand euros, paid from the {service}'s own budget.",
    "Complaints about {other} fell by {a} percent after a review in the spring.",
    "The council approved {a} new {thing} for the {service}, to be delivered within {b} months.",
    "An audit found that {a} percent of the {other} needed repair within {b} years.",
]


def generated_report(seed: int = 7) -> Document:
    rng = random.Random(seed)
    pages, facts = [], []
    for number, (service, headline, thing, other) in enumerate(_SERVICES, start=1):
        figure = f"{rng.randint(11, 99)}.{rng.randint(1, 9)}"
        facts.append(figure)
        sentences = [f"In 2025 the town's {service} {headline.format(n=figure)}."]
        for template in rng.sample(_DETAIL, len(_DETAIL)):
            values = {name: rng.randint(2, 400) for name in "abc"}
            sentences.append(template.format(service=service, thing=thing, other=other, **values))
        pages.append(Page(number, " ".join(sentences)))
    return Document("generated town report", pages, facts)


def documents() -> list[Document]:
    present = [name for name in CORPUS_FILES if (CORPUS / name).exists()]
    found = [Document(name, extract(CORPUS / name).pages) for name in present]
    sample = extract(REPO / "docproc" / "samples" / "solar-cooperative-report.pdf").pages
    return [Document("sample report", sample, SAMPLE_FACTS), generated_report(), *found]


def long_text(target_chars: int, seed: int = 11) -> str:
    """A generated text of about target_chars characters (4.5 MB: about 1.2M SmolLM2 tokens)."""
    rng = random.Random(seed)
    paragraphs: list[str] = []
    size = 0
    while size < target_chars:
        service, headline, thing, other = rng.choice(_SERVICES)
        sentences = [f"In {rng.randint(1950, 2025)} the {service} {headline.format(n=rng.randint(2, 999))}."]
        for template in rng.sample(_DETAIL, 3):
            values = {name: rng.randint(2, 4000) for name in "abc"}
            sentences.append(template.format(service=service, thing=thing, other=other, **values))
        paragraphs.append(" ".join(sentences))
        size += len(paragraphs[-1]) + 2
    return "\n\n".join(paragraphs)
