"""Key sentences: central ones first, pulled towards the instructions, within the word budget."""

from docproc.extractive import select, split_sentences, word_count
from docproc.ingestion import Page, extract
from tests.conftest import SAMPLE_PDF


def test_selection_fits_the_budget_in_document_order() -> None:
    sentences = split_sentences(extract(SAMPLE_PDF).pages)
    chosen = select(sentences, 80, None, block_sentences=250)
    assert chosen and sum(word_count(s.text) for s in chosen) <= 80
    assert [s.index for s in chosen] == sorted(s.index for s in chosen)
    assert all(s in sentences for s in chosen)


def test_instructions_change_which_sentences_are_chosen() -> None:
    sentences = split_sentences(extract(SAMPLE_PDF).pages)
    plain = select(sentences, 60, None, block_sentences=250)
    debt = select(sentences, 60, "loans and debt", block_sentences=250)
    assert not any("debt" in s.text for s in plain)
    assert any("debt" in s.text for s in debt)


def test_a_long_document_is_ranked_in_blocks() -> None:
    sentences = split_sentences(extract(SAMPLE_PDF).pages)
    whole = select(sentences, 60, None, block_sentences=250)
    in_blocks = select(sentences, 60, None, block_sentences=20)
    assert len(sentences) > 20 and in_blocks
    assert sum(word_count(s.text) for s in in_blocks) <= 60
    # Rounds of blocks keep the most central sentences: most of the one-block choice survives.
    assert len(set(whole) & set(in_blocks)) >= len(whole) // 2


def test_a_document_of_fragments_still_gets_its_sentences() -> None:
    sentences = split_sentences([Page(1, "Name: Foo Bar\n\nSigned: 2007\n\nSubmit")])
    chosen = select(sentences, 10, None, block_sentences=250)
    assert chosen and set(chosen) <= set(sentences)
