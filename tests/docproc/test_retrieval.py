"""The passage index on real text: the right page for a question, kept on disk, built once under a race."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from docproc.ingestion import Page, extract
from docproc.retrieval import OVERLAP_WORDS, PassageIndex, passages_of
from tests.conftest import SAMPLE_PDF

GPL = Path("/usr/share/common-licenses/GPL-3").read_text()


def test_questions_find_the_page_that_answers_them(tmp_path: Path) -> None:
    index = PassageIndex.build(extract(SAMPLE_PDF).pages)
    for question, page, answer in [
        ("Who chairs the new board of the cooperative?", 1, "Ingrid Solberg"),
        ("How much did the shared battery cost?", 2, "390,000"),
        ("Which roofs are planned for 2026?", 3, "swimming pool"),
    ]:
        # The top passages go into the prompt together: the answer must be among them, on its page.
        found = index.search(question, 3)
        assert any(hit.page == page and answer in hit.text for hit in found), (question, found)

    index.save(tmp_path / "index")
    loaded = PassageIndex.load(tmp_path / "index")
    assert loaded.search("battery cost", 5) == index.search("battery cost", 5)
    assert loaded.search("Quantenchromodynamik", 5) == []


def test_passages_stay_within_their_page_and_overlap() -> None:
    pages = [Page(1, GPL[:5000]), Page(2, "Short second page."), Page(3, "")]
    passages = passages_of(pages, 100)
    assert {page for page, _ in passages} == {1, 2}
    first_page = [text for page, text in passages if page == 1]
    assert all(len(text.split()) <= 100 for text in first_page)
    assert first_page[0].split()[-OVERLAP_WORDS:] == first_page[1].split()[:OVERLAP_WORDS]
    assert " ".join(GPL[:5000].split()).endswith(" ".join(first_page[-1].split()))
    assert [text for page, text in passages if page == 2] == ["Short second page."]


def test_racing_workers_build_a_document_index_once(tmp_path: Path) -> None:
    """Two processes ask for the same document's index at once: one builds it, the other loads it."""
    builds = tmp_path / "builds.log"
    code = textwrap.dedent(
        f"""
        import time
        from docproc.ingestion import Page
        from docproc.retrieval import document_index

        def pages():
            with open({str(builds)!r}, "a") as log:
                log.write("built\\n")
            time.sleep(1)  # long enough for the other process to arrive while this one builds
            return [Page(1, {GPL[:4000]!r}), Page(2, "The warranty is excluded on page two.")]

        print(document_index("doc_race", pages).search("warranty excluded", 1)[0].page)
        """
    )
    env = os.environ | {"DOCPROC_DATA_DIR": str(tmp_path / "data")}
    racers = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    assert [racer.communicate(timeout=120)[0].strip() for racer in racers] == ["2", "2"]
    assert builds.read_text() == "built\n"
    assert sorted(path.name for path in (tmp_path / "data" / "indexes").iterdir()) == [
        "doc_race",
        "doc_race.lock",
    ]
