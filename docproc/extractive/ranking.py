"""Which sentences say most: LexRank centrality (sumy), biased towards the instructions by BM25 (bm25s), and
towards sentences dense in figures and names, per word (a short sentence leaves room for another fact).

LexRank compares every pair of sentences, so its cost grows as the square of their number: a long document is
ranked in blocks, the best of each block go on to the next round, until one block is left. A million-token
text then takes a couple of minutes, not the hours a model would need to read it.
"""

import math
from collections.abc import Sequence
from functools import cache

import bm25s
import numpy as np
from sumy.models.dom import ObjectDocumentModel, Paragraph
from sumy.models.dom import Sentence as SumySentence
from sumy.summarizers._summarizer import SentenceInfo
from sumy.summarizers.lex_rank import LexRankSummarizer
from sumy.utils import get_stop_words

from .faithfulness import figures, names
from .sentences import FINISHED, Sentence, stem, word_count, words

# Shorter ones are headings, captions and fragments; longer ones are tables or lists run together.
MIN_SENTENCE_WORDS = 5
MAX_SENTENCE_WORDS = 80
# Each round of a long document's ranking keeps this share of its sentences.
SURVIVING_SHARE = 0.25
# How much relevance to the instructions counts beside centrality (both scaled to at most 1).
INSTRUCTIONS_WEIGHT = 1.0
# How much density of figures and names counts beside centrality (scaled to at most 1). Measured on
# bench/quality at 60 words: LexRank alone covered 2 of 16 known facts, with this and LENGTH_EXPONENT 8.
FACTS_WEIGHT = 1.0
# A sentence's score is divided by its word count to this power: 0 ranks by score alone, 1 by score per word
# (which favours fragments); a summary of whole sentences holds more facts in few, short ones.
LENGTH_EXPONENT = 0.5
# A sentence that shares this share of its words (figures aside) with a chosen one repeats it: a running
# header, a boilerplate line with another number.
NEAR_DUPLICATE_SHARE = 0.85


class _WordTokenizer:
    """sumy's own tokenizers need nltk's punkt data, a download; sentences are split already."""

    language = "english"

    @staticmethod
    def to_words(text: str) -> list[str]:
        return words(text)


@cache
def _lexrank() -> LexRankSummarizer:
    summarizer = LexRankSummarizer(stem)
    summarizer.stop_words = get_stop_words("english")
    return summarizer


def centrality(texts: Sequence[str]) -> list[float]:
    """LexRank score of each text among the others."""
    document = ObjectDocumentModel([Paragraph([SumySentence(text, _WordTokenizer()) for text in texts])])
    infos: list[SentenceInfo] = []

    def keep_all(ranked: list[SentenceInfo]) -> list[SentenceInfo]:
        infos.extend(ranked)  # the callable "count" hook is how sumy hands out its ratings
        return ranked

    _lexrank()(document, keep_all)
    scores = [0.0] * len(texts)
    for info in infos:
        scores[info.order] = float(info.rating)
    return scores


def relevance(texts: Sequence[str], query: str | None) -> np.ndarray:
    """BM25 score of each text for the query, scaled to at most 1 (zeros without a query)."""
    scores = np.zeros(len(texts))
    if not query or not texts:
        return scores

    def tokenize(items: Sequence[str] | str) -> list[list[str]]:
        return bm25s.tokenize(
            items,
            stopwords="en",
            stemmer=lambda tokens: [stem(token) for token in tokens],
            return_ids=False,
            show_progress=False,
        )

    query_tokens = tokenize(query)[0]
    if not query_tokens:
        return scores
    retriever = bm25s.BM25()
    retriever.index(tokenize(list(texts)), show_progress=False)
    scores = retriever.get_scores(query_tokens)
    top = scores.max()
    return scores / top if top > 0 else scores


def fact_density(text: str) -> float:
    """Figures and names per word: what a summary is asked for, and what the faithfulness check guards."""
    return (len(figures(text)) + len(names(text))) / max(word_count(text), 1)


def _scaled(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    top = array.max() if len(array) else 0.0
    return array / top if top > 0 else array


def rank(sentences: Sequence[Sentence], instructions: str | None, block_sentences: int) -> list[Sentence]:
    """Candidate sentences (not repeated; whole and long enough, unless none is), best first."""
    unique = list({sentence.text.casefold(): sentence for sentence in reversed(sentences)}.values())[::-1]
    pool = [
        s
        for s in unique
        if MIN_SENTENCE_WORDS <= word_count(s.text) <= MAX_SENTENCE_WORDS
        and FINISHED.search(s.text)
        and not s.text[0].islower()  # the tail of a sentence a PDF's layout broke
    ] or unique
    texts = [s.text for s in pool]
    # Independent of the block a sentence is ranked in: scaled over the whole pool, once.
    bias = dict(zip((s.index for s in pool), relevance(texts, instructions), strict=True))
    facts = dict(zip((s.index for s in pool), _scaled([fact_density(text) for text in texts]), strict=True))
    length = {s.index: word_count(s.text) ** LENGTH_EXPONENT for s in pool}
    eliminated: list[Sentence] = []  # sentences dropped in later rounds rank above those dropped earlier
    while True:
        score: dict[int, float] = {}
        for start in range(0, len(pool), block_sentences):
            block = pool[start : start + block_sentences]
            central = _scaled(centrality([s.text for s in block]))
            for sentence, value in zip(block, central, strict=True):
                i = sentence.index  # what the client asked for counts whatever the sentence's length
                score[i] = (value + FACTS_WEIGHT * facts[i]) / length[i] + INSTRUCTIONS_WEIGHT * bias[i]
        ranked = sorted(pool, key=lambda s: -score[s.index])
        if len(pool) <= block_sentences:
            return ranked + eliminated
        kept = max(block_sentences, math.ceil(len(pool) * SURVIVING_SHARE))
        eliminated = ranked[kept:] + eliminated
        pool = sorted(ranked[:kept], key=lambda s: s.index)


def _plain_words(text: str) -> set[str]:
    return {word.casefold() for word in words(text) if not any(char.isdigit() for char in word)}


def _repeats(one: set[str], other: set[str]) -> bool:
    shorter = min(len(one), len(other))
    return shorter > 0 and len(one & other) >= NEAR_DUPLICATE_SHARE * shorter


def select(
    sentences: Sequence[Sentence], max_words: int, instructions: str | None, block_sentences: int
) -> list[Sentence]:
    """The best sentences that together hold at most max_words words, in document order, none repeating
    another; the best one alone when none is that short (fit_to_length then cuts it, marked)."""
    chosen: list[Sentence] = []
    chosen_words: list[set[str]] = []
    total = 0
    ranked = rank(sentences, instructions, block_sentences)
    for sentence in ranked:
        count = word_count(sentence.text)
        mine = _plain_words(sentence.text)
        if total + count <= max_words and not any(_repeats(mine, other) for other in chosen_words):
            chosen.append(sentence)
            chosen_words.append(mine)
            total += count
        if total >= max_words - MIN_SENTENCE_WORDS:
            break
    return sorted(chosen, key=lambda s: s.index) if chosen else ranked[:1]
