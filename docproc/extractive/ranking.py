"""Which sentences say most: LexRank centrality (sumy), biased towards the instructions by BM25 (bm25s).

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

from .sentences import Sentence, stem, word_count, words

# Shorter ones are headings, captions and fragments; longer ones are tables or lists run together.
MIN_SENTENCE_WORDS = 5
MAX_SENTENCE_WORDS = 80
# Each round of a long document's ranking keeps this share of its sentences.
SURVIVING_SHARE = 0.25
# How much relevance to the instructions counts beside centrality (both scaled to at most 1).
INSTRUCTIONS_WEIGHT = 1.0


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


def _scaled(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    top = array.max() if len(array) else 0.0
    return array / top if top > 0 else array


def rank(sentences: Sequence[Sentence], instructions: str | None, block_sentences: int) -> list[Sentence]:
    """Candidate sentences (not repeated; long enough, unless none is), best first."""
    unique = list({sentence.text.casefold(): sentence for sentence in reversed(sentences)}.values())[::-1]
    pool = [s for s in unique if MIN_SENTENCE_WORDS <= word_count(s.text) <= MAX_SENTENCE_WORDS] or unique
    bias = dict(zip((s.index for s in pool), relevance([s.text for s in pool], instructions), strict=True))
    eliminated: list[Sentence] = []  # sentences dropped in later rounds rank above those dropped earlier
    while True:
        score: dict[int, float] = {}
        for start in range(0, len(pool), block_sentences):
            block = pool[start : start + block_sentences]
            central = _scaled(centrality([s.text for s in block]))
            for sentence, value in zip(block, central, strict=True):
                score[sentence.index] = value + INSTRUCTIONS_WEIGHT * bias[sentence.index]
        ranked = sorted(pool, key=lambda s: -score[s.index])
        if len(pool) <= block_sentences:
            return ranked + eliminated
        kept = max(block_sentences, math.ceil(len(pool) * SURVIVING_SHARE))
        eliminated = ranked[kept:] + eliminated
        pool = sorted(ranked[:kept], key=lambda s: s.index)


def select(
    sentences: Sequence[Sentence], max_words: int, instructions: str | None, block_sentences: int
) -> list[Sentence]:
    """The best sentences that together hold at most max_words words, in document order."""
    chosen: list[Sentence] = []
    total = 0
    for sentence in rank(sentences, instructions, block_sentences):
        count = word_count(sentence.text)
        if total + count <= max_words:
            chosen.append(sentence)
            total += count
        if total >= max_words - MIN_SENTENCE_WORDS:
            break
    return sorted(chosen, key=lambda s: s.index)
