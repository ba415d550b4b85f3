"""PDF extraction over the shared corpus of real PDFs, and over damaged and hostile PDFs built here."""

import contextlib
import difflib
import multiprocessing.forkserver
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import billiard
import pypdf
import pytest

from docproc.ingestion import (
    DecompressionBombError,
    EmptyFileError,
    ExtractionTimeoutError,
    FormDrawLimitError,
    IngestionError,
    MalformedPdfError,
    NoTextLayerError,
    OcrMode,
    ParserLimits,
    PasswordRequiredError,
    ResourceLimitError,
    TextTooLongError,
    TooManyPagesError,
    TruncatedPdfError,
    UnsupportedTypeError,
    WrongPasswordError,
    extract,
)
from docproc.ingestion.normalize import normalize_text
from docproc.ingestion.pdf_worker import MIN_PAGES_PER_WORKER, check_structure, lead_job, split_pages

from .pdfs import (
    BIG,
    CORPUS_PASSWORD,
    ENCRYPTED,
    FOUR_PAGES,
    corpus_entries,
    corpus_file,
    text_operators,
    write_many_streams_pdf,
    write_nested_forms_pdf,
    write_pdf,
    zlib_stream,
)

# Corpus files that cannot give text, and why; every other corpus file must give its pages' text.
EXPECTED_FAILURES: dict[str, type[IngestionError]] = {
    ENCRYPTED: PasswordRequiredError,
    "007-imagemagick-images/imagemagick-ASCII85Decode.pdf": NoTextLayerError,
    "007-imagemagick-images/imagemagick-CCITTFaxDecode.pdf": NoTextLayerError,
    "007-imagemagick-images/imagemagick-lzw.pdf": NoTextLayerError,
    # Its page tree is broken (/Pages missing, object 172 undefined): neither pdfium nor pypdf can read it.
    "017-unreadable-meta-data/unreadablemetadata.pdf": MalformedPdfError,
    "019-grayscale-image/grayscale-image.pdf": NoTextLayerError,
    "023-cmyk-image/cmyk-image.pdf": NoTextLayerError,
}
# Below this agreement with pypdf on the characters shown (whitespace aside: line breaks differ), our text
# would be worse, not just laid out differently.
MIN_AGREEMENT_WITH_PYPDF = 0.95
# pypdf is slow; comparing longer documents takes too long for a unit test (bench/ingestion does all).
MAX_PAGES_COMPARED = 10


def shown_characters_agreement(ours: str, reference: str) -> float:
    return difflib.SequenceMatcher(
        None, "".join(ours.split()), "".join(reference.split()), autojunk=False
    ).ratio()


# Text layers only: OCR has its own tests (test_ocr.py).
@pytest.mark.parametrize("entry", corpus_entries(), ids=lambda entry: entry["path"])
def test_every_corpus_file_gives_its_pages_or_the_right_error(entry: dict) -> None:
    path = corpus_file(entry["path"])
    if entry["path"] in EXPECTED_FAILURES:
        with pytest.raises(EXPECTED_FAILURES[entry["path"]]) as raised:
            extract(path, ocr=OcrMode.off)
        assert raised.value.code and raised.value.message
        return
    document = extract(path, ocr=OcrMode.off)
    assert document.content_type == "application/pdf"
    assert [page.number for page in document.pages] == list(range(1, entry["pages"] + 1))
    assert document.text.strip()
    assert not any(char in document.text for char in "\x00\r\ufffe\ufffd")


@pytest.mark.parametrize(
    "entry",
    [
        entry
        for entry in corpus_entries()
        if entry["path"] not in EXPECTED_FAILURES and entry["pages"] <= MAX_PAGES_COMPARED
    ],
    ids=lambda entry: entry["path"],
)
def test_corpus_text_agrees_with_pypdf(entry: dict) -> None:
    path = corpus_file(entry["path"])
    reference = "\n".join(
        normalize_text(page.extract_text(), from_pdf=True) for page in pypdf.PdfReader(path).pages
    )
    text = extract(path, ocr=OcrMode.off).text
    assert shown_characters_agreement(text, reference) >= MIN_AGREEMENT_WITH_PYPDF


def test_right_to_left_text_is_in_reading_order() -> None:
    # pdfium returns Arabic in visual order (reversed); pypdf's logical order must win.
    for name in ["habibi.pdf", "habibi-rotated.pdf", "habibi-oneline-cmap.pdf"]:
        document = extract(corpus_file(f"015-arabic/{name}"))
        assert all(page.text == "حَبيبي habibi حَبيبي" for page in document.pages), name


def test_words_hyphenated_at_line_ends_are_joined() -> None:
    text = extract(corpus_file("026-latex-multicolumn/multicolumn.pdf")).text
    assert "adipiscing" in text and "consectetuer" in text
    assert "adip-" not in text


def test_encrypted_pdf_opens_only_with_its_password() -> None:
    path = corpus_file(ENCRYPTED)
    with pytest.raises(PasswordRequiredError) as raised:
        extract(path)
    assert raised.value.code == "password_required"
    with pytest.raises(WrongPasswordError) as raised:
        extract(path, password="not-the-password")
    assert raised.value.code == "wrong_password"
    document = extract(path, password=CORPUS_PASSWORD)
    assert len(document.pages) == 1
    assert document.text.startswith("Lorem ipsum dolor sit amet")


def test_parallel_workers_give_the_same_pages_as_one() -> None:
    path = corpus_file(BIG)
    assert len(split_pages(117, 2)) == 2 and len(split_pages(MIN_PAGES_PER_WORKER, 2)) == 1
    assert extract(path, workers=2) == extract(path, workers=1)


def test_pages_keep_their_order_and_numbers_across_workers(tmp_path: Path) -> None:
    original = extract(corpus_file(FOUR_PAGES), workers=1)
    writer = pypdf.PdfWriter()
    copies = 2 * MIN_PAGES_PER_WORKER // 4 + 1  # enough pages for two workers
    for _ in range(copies):
        writer.append(corpus_file(FOUR_PAGES))
    writer.write(tmp_path / "repeated.pdf")
    document = extract(tmp_path / "repeated.pdf", workers=2)
    assert [page.number for page in document.pages] == list(range(1, 4 * copies + 1))
    assert [page.text for page in document.pages] == [page.text for page in original.pages] * copies


def test_pdf_after_leading_junk_is_read(tmp_path: Path) -> None:
    original = extract(corpus_file(FOUR_PAGES))
    (tmp_path / "mail.pdf").write_bytes(b"X-Mailer: junk\r\n" * 20 + corpus_file(FOUR_PAGES).read_bytes())
    assert extract(tmp_path / "mail.pdf") == original


def test_truncated_pdf(tmp_path: Path) -> None:
    data = corpus_file(FOUR_PAGES).read_bytes()
    (tmp_path / "half.pdf").write_bytes(data[: len(data) // 2])
    with pytest.raises(TruncatedPdfError) as raised:
        extract(tmp_path / "half.pdf")
    assert raised.value.code == "truncated_pdf" and "truncated" in raised.value.message


def test_malformed_pdf(tmp_path: Path) -> None:
    (tmp_path / "garbage.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n")
    with pytest.raises(MalformedPdfError) as raised:
        extract(tmp_path / "garbage.pdf")
    assert raised.value.code == "malformed_pdf"


def test_empty_file_and_image_named_pdf(tmp_path: Path) -> None:
    (tmp_path / "empty.pdf").write_bytes(b"")
    with pytest.raises(EmptyFileError):
        extract(tmp_path / "empty.pdf")
    (tmp_path / "image.pdf").write_bytes(b"GIF89a" + bytes(64))
    with pytest.raises(UnsupportedTypeError, match="GIF image"):
        extract(tmp_path / "image.pdf")


def test_generated_pdf_text_is_extracted(tmp_path: Path) -> None:
    path = write_pdf(
        tmp_path / "three.pdf", zlib_stream(text_operators("The quick brown fox", lines=3)), pages=3
    )
    document = extract(path)
    assert [page.text for page in document.pages] == [
        "The quick brown fox\nThe quick brown fox\nThe quick brown fox"
    ] * 3


def test_too_many_pages_and_too_much_text() -> None:
    path = corpus_file(FOUR_PAGES)
    with pytest.raises(TooManyPagesError, match="4 pages"):
        extract(path, max_pages=3)
    with pytest.raises(TextTooLongError):
        extract(path, max_chars=1000)
    assert len(extract(path, max_pages=4).pages) == 4


def test_decompression_bomb_is_refused_before_parsing(tmp_path: Path) -> None:
    # 200 MB of zeros behind one line of text: under 1 MB on disk.
    bomb = zlib_stream([text_operators("bomb"), bytes(1 << 20)], repeat=200)
    path = write_pdf(tmp_path / "bomb.pdf", bomb)
    assert path.stat().st_size < 2 << 20
    started = time.monotonic()
    with pytest.raises(DecompressionBombError) as raised:
        extract(path)
    assert raised.value.code == "decompression_bomb"
    assert time.monotonic() - started < 10


def test_big_flat_image_is_not_a_bomb(tmp_path: Path) -> None:
    # A white 6000x3000 page scan inflates 1000:1 to 54 MB, like a bomb, but nothing decodes its pixels.
    content = zlib_stream(b"q 612 0 0 792 0 0 cm /Im1 Do Q\n" + text_operators("Scanned, with a text layer"))
    path = write_pdf(tmp_path / "scan.pdf", content, white_image_size=(6000, 3000))
    assert extract(path).text == "Scanned, with a text layer"


def test_parser_running_out_of_memory_is_an_error_not_a_crash(tmp_path: Path) -> None:
    # Each stream inflates to 30 MiB, under the pre-scan's limits, but the page draws it until pdfium's
    # concatenated content passes the child's memory limit.
    stream_bytes = 30 << 20
    limits = ParserLimits(memory_bytes=256 << 20)
    content = zlib_stream([text_operators("hi"), bytes(stream_bytes)])
    path = write_pdf(tmp_path / "many.pdf", content, content_repeats=limits.memory_bytes // stream_bytes + 2)
    with pytest.raises(ResourceLimitError) as raised:
        extract(path, limits=limits)
    assert raised.value.code == "resource_limit_exceeded"
    assert "256 MiB" in raised.value.message


def test_streams_inflating_past_the_document_budget_are_refused(tmp_path: Path) -> None:
    # 40 streams of 30 MiB: each passes the per-stream bomb check, together they parse for a minute.
    path = write_many_streams_pdf(tmp_path / "many.pdf", streams=40, stream_bytes=30 << 20)
    assert path.stat().st_size < 8 << 20
    with pytest.raises(DecompressionBombError) as raised:
        extract(path, limits=ParserLimits(timeout_s=30))
    assert raised.value.code == "decompression_bomb" and "in all" in raised.value.message
    # Within a budget that allows them, the same file is read.
    assert len(extract(path, limits=ParserLimits(max_inflated_bytes=2 << 30)).pages) == 40


def test_nested_form_xobjects_fail_fast_within_bounded_memory(tmp_path: Path) -> None:
    # 3.6 KB drawing a form 10**9 times: pdfium would parse every draw until the memory limit stops it.
    path = write_nested_forms_pdf(tmp_path / "nested.pdf", depth=9, fanout=10)
    assert path.stat().st_size < 8 << 10
    # The memory limit is far below what pdfium needs for the page: the error must come before pdfium.
    with pytest.raises(FormDrawLimitError) as raised:
        extract(path, limits=ParserLimits(timeout_s=30, memory_bytes=256 << 20))
    assert raised.value.status == 422 and raised.value.code == "form_draw_limit_exceeded"
    assert "Page 1" in raised.value.message
    # Shallow nesting is an ordinary page, read whole.
    shallow = write_nested_forms_pdf(tmp_path / "shallow.pdf", depth=3, fanout=10)
    assert extract(shallow, limits=ParserLimits(max_form_draws_per_page=1110)).text == "deep"
    with pytest.raises(FormDrawLimitError, match="over 1,109 times"):
        extract(shallow, limits=ParserLimits(max_form_draws_per_page=1109))


def _planned_form_draw_limit(path: Path) -> int | None:
    """The form draw limit the lead child hands the page readers (None: form draws are not counted)."""
    messages: list[tuple] = []
    with contextlib.suppress(FormDrawLimitError):  # the plan goes out before any page is read
        lead_job(messages.append, path, None, 100, 10**6, 1, 1 << 30, 50_000, OcrMode.off, 50_000_000)
    assert messages[0][0] == "plan"
    return messages[0][3]


def test_form_draws_are_counted_only_where_forms_may_be(tmp_path: Path) -> None:
    # Pages drawing an image hundreds of times, and no form XObject: the pre-scan proves there is nothing to
    # count, and pypdf never walks the pages.
    drawing = zlib_stream(text_operators("drawn") + b"q 1 0 0 1 0 0 cm /Im1 Do Q\n" * 500)
    images = write_pdf(tmp_path / "images.pdf", drawing, pages=30, white_image_size=(4, 4))
    assert _planned_form_draw_limit(images) is None
    assert extract(images).pages[29].text.startswith("drawn")
    # The hostile file and a shallow one are counted, exactly.
    nested = write_nested_forms_pdf(tmp_path / "nested.pdf", depth=9, fanout=10)
    assert _planned_form_draw_limit(nested) == 50_000
    assert (
        _planned_form_draw_limit(write_nested_forms_pdf(tmp_path / "shallow.pdf", depth=2, fanout=3))
        == 50_000
    )
    # A form's subtype the byte-level look cannot read plainly still counts as a form.
    data = nested.read_bytes()
    assert check_structure(data, 1 << 30)
    for disguise in (b"/Subtype /Fo#72m", b"/Subtype 99 0 R", b"/Subtype (x) /Form", b"/Subtype % c\n/Form"):
        assert check_structure(data.replace(b"/Subtype /Form", disguise), 1 << 30), disguise
    # Dictionaries read plainly with another subtype, or none, are not forms.
    assert not check_structure(data.replace(b"/Subtype /Form", b"/Subtype /Image"), 1 << 30)
    assert not check_structure(data.replace(b"/Subtype /Form", b""), 1 << 30)
    # ... unless a stream keyword hides from the scan (not followed by an end of line).
    assert check_structure(
        data.replace(b"/Subtype /Form", b"").replace(b">>\nstream\n", b">>\nstream \n"), 1 << 30
    )


def _forkserver_children() -> list[int]:
    """Processes the multiprocessing fork server has started that are still alive (Linux /proc)."""
    server = multiprocessing.forkserver._forkserver._forkserver_pid
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == server and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


def test_slow_parse_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    slow = zlib_stream(text_operators("many words on a line to keep the parser busy", lines=20_000))
    path = write_pdf(tmp_path / "slow.pdf", slow, pages=300)
    started = time.monotonic()
    with pytest.raises(ExtractionTimeoutError) as raised:
        extract(path, limits=ParserLimits(timeout_s=1.0))
    assert raised.value.code == "extraction_timeout"
    assert time.monotonic() - started < 3
    assert _forkserver_children() == []


def test_concurrent_calls_from_threads() -> None:
    paths = [
        corpus_file(FOUR_PAGES),
        corpus_file("001-trivial/minimal-document.pdf"),
        corpus_file(ENCRYPTED),
    ] * 4

    def outcome(path: Path) -> object:
        try:
            return extract(path)
        except IngestionError as error:
            return error.code

    expected = [outcome(path) for path in paths]
    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(outcome, paths)) == expected


def _page_count(path: Path) -> int:
    return len(extract(path).pages)


def test_extraction_inside_a_celery_prefork_worker() -> None:
    # Celery's prefork pool runs tasks in daemonic billiard processes, which multiprocessing
    # would refuse to give children.
    with billiard.Pool(1) as pool:
        assert pool.apply(_page_count, (corpus_file(FOUR_PAGES),)) == 4


def test_children_do_not_run_the_callers_main_module_again(tmp_path: Path) -> None:
    # multiprocessing's fork-server children normally re-run the main module (seconds, for one importing a
    # model stack); a script without a main guard would even recurse.
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from pathlib import Path

            from docproc.ingestion import extract

            with open(sys.argv[1], "a") as log:
                log.write("main module ran\\n")
            print(len(extract(Path(sys.argv[2])).pages))
            """
        )
    )
    log = tmp_path / "log.txt"
    repository = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, str(script), str(log), str(corpus_file(FOUR_PAGES))],
        env=os.environ | {"PYTHONPATH": str(repository)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"
    assert log.read_text() == "main module ran\n"


def _process_start(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process; None once it has ended (a zombie has ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in "ZX" else (int(fields[1]), fields[19])


def _started_at(pid: int) -> str | None:
    return start[1] if (start := _process_start(pid)) else None


def _descendants(pid: int) -> dict[int, tuple[int, str]]:
    """Live descendants of `pid`: their parent pids and start times (so that a reused pid does not count)."""
    found: dict[int, tuple[int, str]] = {}
    parents = {pid}
    while parents:
        children = {
            int(stat.parent.name): start
            for stat in Path("/proc").glob("[0-9]*/stat")
            if (start := _process_start(int(stat.parent.name))) and start[0] in parents
        }
        found |= children
        parents = set(children) - parents
    return found


def test_parsers_die_with_a_killed_caller(tmp_path: Path) -> None:
    # A caller killed with SIGKILL cannot clean up: its fork server and parsers must end by themselves,
    # not parse on until their CPU-time limit.
    slow = zlib_stream(text_operators("many words on a line to keep the parser busy", lines=20_000))
    path = write_pdf(tmp_path / "slow.pdf", slow, pages=300)
    script = "import sys; from docproc.ingestion import ParserLimits, extract; "
    script += "extract(sys.argv[1], limits=ParserLimits(timeout_s=600), workers=2)"
    caller = subprocess.Popen([sys.executable, "-c", script, str(path)], env=os.environ)
    try:
        deadline = time.monotonic() + 60
        while True:  # until both parsers (grandchildren: the fork server starts them) are at work
            processes = _descendants(caller.pid)
            if sum(parent != caller.pid for parent, _ in processes.values()) >= 2:
                break
            assert time.monotonic() < deadline and caller.poll() is None, "the parsers did not start"
            time.sleep(0.1)
    finally:
        caller.kill()
        caller.wait()
    deadline = time.monotonic() + 20
    while alive := [
        pid for pid, (_, start) in processes.items() if (_process_start(pid) or (0, ""))[1] == start
    ]:
        assert time.monotonic() < deadline, f"processes {alive} outlived their killed caller"
        time.sleep(0.1)
