"""Sentences keep their pages; abbreviations, decimals and list items do not break them wrongly."""

from concurrent.futures import ThreadPoolExecutor

from docproc.extractive import split_sentences, word_count
from docproc.ingestion import Page


def test_sentences_keep_their_pages_and_order() -> None:
    pages = [
        Page(1, "# Results\n\nDr. Smith measured 3.5 kW on the\nroof. The array was built in 2019."),
        Page(2, "Costs:\n- Panels cost 12,000 euros in total.\n- Labour came to 4,500 euros."),
    ]
    sentences = split_sentences(pages)
    assert [(s.page, s.text) for s in sentences] == [
        (1, "Results"),
        (1, "Dr. Smith measured 3.5 kW on the roof."),
        (1, "The array was built in 2019."),
        (2, "Costs:"),
        (2, "Panels cost 12,000 euros in total."),
        (2, "Labour came to 4,500 euros."),
    ]
    assert [s.index for s in sentences] == list(range(6))


def test_numbers_and_hyphenated_words_count_as_one_word() -> None:
    assert word_count("The co-op paid 1,200.50 euros.") == 5


def test_a_pdf_heading_line_does_not_open_the_next_sentence() -> None:
    page = Page(
        1,
        "Annual Report\n2025\nThe year went well.\n2. Finances\nRevenue reached 412,000 euros. Costs were\n"
        "low, as the board had\nExpected in the spring.",
    )
    assert [s.text for s in split_sentences([page])] == [
        "Annual Report",
        "2025",
        "The year went well.",
        "2. Finances",
        "Revenue reached 412,000 euros.",
        # A short line inside a sentence is no heading: the line before it did not end the sentence.
        "Costs were low, as the board had Expected in the spring.",
    ]


def test_an_empty_text_has_no_sentences() -> None:
    assert split_sentences([Page(1, "")]) == []


def test_threads_split_as_one_thread_does() -> None:
    # Batch items run together split their documents in threads of one worker at the same time.
    documents = [
        [Page(1, f"Report {n}. The pump failed {n} times in winter. Dr. Smith replaced the seals on 3 May.")]
        + [Page(2, f"Costs rose by {n}%. The board, e.g. its chair, approved it. Work ends in {2020 + n}.")]
        for n in range(24)
    ]
    alone = [split_sentences(pages) for pages in documents]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(split_sentences, documents * 20))
    assert together == alone * 20
