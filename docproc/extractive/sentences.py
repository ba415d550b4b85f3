"""A document's sentences, each with the page it is on (pysbd, a rule-based segmenter: no model, no data)."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise

import pysbd
from nltk.stem.snowball import SnowballStemmer

from docproc.ingestion import Page

# Paragraphs end at blank lines; Markdown headings and list items are paragraphs of their own.
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n|\n(?=[ \t]*(?:#{1,6}\s|[-*+•]\s|\d{1,3}[.)]\s))")
_BLOCK_MARKER = re.compile(r"^(?:#{1,6}|[-*+•])\s+")
WORD = re.compile(r"\w+(?:[-'’.,]\w+)*")
# A line this short, without punctuation at its end, between a finished line and a capitalised one, is a
# heading (PDF text keeps no blank line after "2. Finances"): it would otherwise open the next sentence.
HEADING_MAX_WORDS = 8
_UNFINISHED_LINE = re.compile(r"[\w)\]]$")
_STARTS_CAPITALISED = re.compile(r"^\W*[A-Z0-9]")
# A sentence ends with its punctuation (perhaps inside quotes or brackets); anything else was cut off, or is a
# heading or a table row.
FINISHED = re.compile(r"[.!?…][\"'”’)\]]*$")


@dataclass(frozen=True)
class Sentence:
    text: str
    page: int
    #: Position in the document (sentences are compared and ordered by it).
    index: int


@cache
def _snowball() -> SnowballStemmer:
    return SnowballStemmer("english")  # rules only: nltk downloads no data for it


def stem(word: str) -> str:
    return _snowball().stem(word)


def words(text: str) -> list[str]:
    """Words and numbers ("1,200.5" and "co-op" are one each)."""
    return WORD.findall(text)


def word_count(text: str) -> int:
    return len(words(text))


def _segment(text: str) -> list[str]:
    """The sentences of a run of text (lines inside a paragraph are joined)."""
    # A segmenter of its own (0.5 µs): one keeps the text it works on, so threads (batch items run together)
    # sharing one cut each other's sentences.
    segmenter = pysbd.Segmenter(language="en", clean=False)
    return [sentence.strip() for sentence in segmenter.segment(" ".join(text.split())) if sentence.strip()]


def _break_after_headings(text: str) -> str:
    lines = [line.strip() for line in text.splitlines()]
    out: list[str] = []
    previous_finished = True  # a page opens with a finished "line"
    for line, following in pairwise([*lines, ""]):
        heading = (
            previous_finished
            and 0 < word_count(line) <= HEADING_MAX_WORDS
            and _UNFINISHED_LINE.search(line) is not None
            and _STARTS_CAPITALISED.search(following) is not None
        )
        out.append(line + "\n" if heading else line)
        previous_finished = heading or not line or _UNFINISHED_LINE.search(line) is None
    return "\n".join(out)


def sentences_of(text: str) -> list[str]:
    """The sentences of a page or a generated summary, by paragraph, without list or heading marks."""
    return [
        sentence
        for paragraph in _PARAGRAPH_BREAK.split(_break_after_headings(text))
        for sentence in _segment(_BLOCK_MARKER.sub("", paragraph.strip()))
    ]


def split_sentences(pages: Sequence[Page]) -> list[Sentence]:
    sentences: list[Sentence] = []
    for page in pages:
        for text in sentences_of(page.text):
            sentences.append(Sentence(text, page.number, len(sentences)))
    return sentences
