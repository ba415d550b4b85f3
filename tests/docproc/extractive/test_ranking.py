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


def test_short_sentences_with_figures_win_over_central_generic_ones() -> None:
    generic = [
        "The town council discussed the water service and the bus service at length this year.",
        "The water service and the bus service were discussed by the town council again.",
        "The council said the water service and the bus service matter to the town.",
        "Members of the council asked how the water service and the bus service could improve.",
    ]
    facts = ["The water works delivered 52.3 million cubic metres.", "Buses carried 26.4 million people."]
    sentences = split_sentences([Page(1, " ".join([*generic, *facts]))])
    chosen = [s.text for s in select(sentences, 20, None, block_sentences=250)]
    assert chosen == facts


def test_near_duplicates_and_sentence_tails_are_not_chosen() -> None:
    page = Page(
        1,
        "7 3 Baz Hello, here is some text without a meaning. 5 4 Foo Hello, here is some text without a "
        "meaning.\n\nin of the original language and some text.\n\n"
        "A blind text like this gives you information about the font.",
    )
    chosen = [s.text for s in select(split_sentences([page]), 60, None, block_sentences=250)]
    assert len([text for text in chosen if "Hello" in text]) == 1
    assert not any(text.startswith("in of") for text in chosen) and len(chosen) == 2


def test_a_sentence_longer_than_max_words_is_still_chosen_when_it_is_the_only_one() -> None:
    # fit_to_length then cuts it, marked with an ellipsis: a summary is never empty.
    note = "The village hall got a shared battery that stores the roofs' solar power."
    chosen = select(split_sentences([Page(1, note)]), 10, None, 250)
    assert [sentence.text for sentence in chosen] == [note]
