"""Is each generated sentence supported by the source sentences it drew on? And the cut to length.

A small model invents figures and names, and drifts into comments about the text. A generated sentence passes
when every number and every capitalised name in it occurs in the sources (names with their capitals), and
enough of its content words do (stemmed, so that a rewrite may inflect them). One that fails is replaced by
the source sentence closest to it, or dropped when no source sentence is close or the closest is in the
summary already.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from sumy.utils import get_stop_words

from .sentences import FINISHED, WORD, Sentence, sentences_of, stem, words

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A replacement must share at least this many content words with the sentence it replaces.
MIN_SHARED_WORDS = 2


@dataclass(frozen=True)
class Checked:
    sentences: list[str]
    #: Generated sentences that failed the check (each replaced by a source sentence, or dropped).
    replaced: int


@cache
def _stop_words() -> frozenset[str]:
    return frozenset(get_stop_words("english"))


def figures(text: str) -> set[str]:
    # "1,200" and "1200" are the same figure; a trailing full stop is the sentence's.
    return {number.replace(",", "").rstrip(".") for number in _NUMBER.findall(text)}


def names(text: str) -> set[str]:
    """Words with a capital where the sentence does not call for one (not the first word's first letter).

    As written: a name must occur in the source with its capitals ("Solar Park" is not "solar park").
    """
    found = set()
    for position, word in enumerate(words(text)):
        letters = word if position else word[1:]
        if any(char.isupper() for char in letters) and word != "I":
            found.add(word)
    return found


def _content_stems(text: str) -> set[str]:
    return {
        stem(word.casefold())
        for word in words(text)
        if word.casefold() not in _stop_words() and not _NUMBER.fullmatch(word)
    }


class _Sources:
    def __init__(self, sentences: Sequence[Sentence]) -> None:
        self.sentences = sentences
        joined = "\n".join(sentence.text for sentence in sentences)
        self.figures = figures(joined)
        self.words = set(words(joined))
        self.stems = [_content_stems(sentence.text) for sentence in sentences]
        self.all_stems = set().union(*self.stems)

    def supports(self, text: str, min_word_support: float) -> bool:
        if not figures(text) <= self.figures or not names(text) <= self.words:
            return False
        stems = _content_stems(text)
        return not stems or len(stems & self.all_stems) >= min_word_support * len(stems)

    def closest(self, text: str) -> Sentence | None:
        stems = _content_stems(text)
        shared, best = max(
            ((len(stems & candidate), -position) for position, candidate in enumerate(self.stems)),
            default=(0, 0),
        )
        return self.sentences[-best] if shared >= MIN_SHARED_WORDS else None


def supporting_sentence(text: str, sources: Sequence[Sentence]) -> Sentence | None:
    """The source sentence that best bears out a short text (an answer): among those holding all its figures,
    the one sharing most of its content words; None when no sentence holds its figures or, without figures,
    none shares enough words."""
    wanted = figures(text)
    holding = [sentence for sentence in sources if wanted <= figures(sentence.text)]
    if not wanted or not holding:
        return None if wanted else _Sources(sources).closest(text)
    stems = _content_stems(text)
    return max(holding, key=lambda sentence: len(stems & _content_stems(sentence.text)))


def check_faithfulness(generated: str, sources: Sequence[Sentence], min_word_support: float) -> Checked:
    """The generated text's finished sentences, each supported by the sources or replaced by one of them."""
    checked: list[str] = []
    replaced = 0
    source = _Sources(sources)
    sentences = sentences_of(generated)
    if sentences and not FINISHED.search(sentences[-1]):
        sentences.pop()  # cut off by the token limit
    for sentence in sentences:
        if source.supports(sentence, min_word_support):
            checked.append(sentence)
            continue
        replaced += 1
        closest = source.closest(sentence)
        if closest is not None and closest.text not in checked:
            checked.append(closest.text)
    return Checked(checked, replaced)


def fit_to_length(sentences: Sequence[str], max_words: int) -> str:
    """Whole sentences, in order, within max_words: one that would pass it is left out, later ones may fit.

    Only when no sentence fits is the first one cut, at max_words words, with an ellipsis to say so.
    """
    kept: list[str] = []
    total = 0
    for sentence in sentences:
        count = len(words(sentence))
        if total + count <= max_words:
            kept.append(sentence)
            total += count
    if not kept and sentences:
        last_word = list(WORD.finditer(sentences[0]))[max_words - 1]
        return sentences[0][: last_word.end()] + "…"
    return " ".join(kept)
