"""The faithfulness check and the cut to length, without a model."""

from docproc.extractive import check_faithfulness, fit_to_length, split_sentences, supporting_sentence
from docproc.ingestion import Page

SOURCE = split_sentences(
    [
        Page(1, "Revenue reached 412,000 euros in 2025. The cooperative was founded in Alderbrook."),
        Page(2, "The battery cost 390,000 euros; a regional climate grant paid 40 percent of it."),
    ]
)


def test_an_invented_number_is_replaced_by_the_closest_source_sentence() -> None:
    checked = check_faithfulness(
        "Revenue reached 412 MWHZ in 2025. The battery cost 1 billion euros.", SOURCE, 0.6
    )
    assert checked.replaced == 2
    assert checked.sentences == [SOURCE[0].text, SOURCE[2].text]


def test_supported_sentences_pass_even_when_rewritten() -> None:
    rewritten = ["Revenue reached 412,000 euros.", "A climate grant paid 40 percent of the battery."]
    checked = check_faithfulness(" ".join(rewritten), SOURCE, 0.6)
    assert checked.replaced == 0
    assert checked.sentences == rewritten


def test_invented_names_and_comments_about_the_text_do_not_pass() -> None:
    text = "The cooperative was founded by Siemens. The original text is quite long and convoluted."
    checked = check_faithfulness(text, SOURCE, 0.6)
    assert checked.replaced == 2
    # The first has a close source sentence; the comment has none and is dropped.
    assert checked.sentences == [SOURCE[1].text]


def test_an_unfinished_last_sentence_is_dropped() -> None:
    checked = check_faithfulness("Revenue reached 412,000 euros. The battery cost", SOURCE, 0.6)
    assert checked.sentences == ["Revenue reached 412,000 euros."]
    assert checked.replaced == 0


def test_the_cut_keeps_whole_sentences_within_max_words() -> None:
    sentences = ["One two three four.", "Five six seven eight nine.", "Ten eleven."]
    assert fit_to_length(sentences, 6) == "One two three four. Ten eleven."
    assert fit_to_length(sentences, 10) == "One two three four. Five six seven eight nine."
    assert fit_to_length(sentences, 11) == " ".join(sentences)


def test_only_when_no_sentence_fits_is_one_cut_visibly() -> None:
    assert fit_to_length(["One, two three four five.", "Six seven eight nine."], 3) == "One, two three…"


def test_a_name_must_occur_with_its_capitals() -> None:
    source = split_sentences([Page(1, "The new solar park opened in May beside the old tram depot.")])
    checked = check_faithfulness("The Solar Park opened in May beside the tram depot.", source, 0.6)
    assert checked.replaced == 1 and checked.sentences == [source[0].text]


def test_the_sentence_an_answer_rests_on_holds_its_figures() -> None:
    sources = split_sentences(
        [
            Page(1, "The cooperative met in May. Its members approved the budget of 120,000 euros."),
            Page(2, "The secret vault code of the cooperative is 7431. The vault is in the cellar."),
        ]
    )
    found = supporting_sentence("The code is 7431.", sources)
    assert found is not None and (found.page, found.text) == (
        2,
        "The secret vault code of the cooperative is 7431.",
    )
    by_words = supporting_sentence("Members approved the cooperative budget.", sources)
    assert by_words is not None and by_words.page == 1 and "budget" in by_words.text
    assert supporting_sentence("The code is 9999.", sources) is None
