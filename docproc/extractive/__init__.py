"""Extractive machinery for faithful summaries: sentences with their pages, ranking, and checks.

sentences = split_sentences(pages)                # pysbd, page by page
chosen = select(sentences, max_words, instructions, block_sentences)   # LexRank (+ BM25 on instructions)
checked = check_faithfulness(generated_text, sources, min_word_support)   # unsupported sentences replaced
fit_to_length(sentences, max_words)               # whole sentences only, within max_words
supporting_sentence(answer, sources)              # the sentence an answer rests on (a citation)
"""

from .faithfulness import Checked, check_faithfulness, fit_to_length, supporting_sentence
from .ranking import select
from .sentences import Sentence, split_sentences, word_count

__all__ = [
    "Checked",
    "Sentence",
    "check_faithfulness",
    "fit_to_length",
    "select",
    "split_sentences",
    "supporting_sentence",
    "word_count",
]
