"""The web page as a person uses it: Debian's Chromium, driven by Playwright, against a real uvicorn server
and a real worker with the default model. Each screen is saved under docs/screenshots/ for the README."""

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from model.testing import local_training_text, make_random_checkpoint
from tests.conftest import CORPUS, REPO, SAMPLE_PDF, Service, service_env

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "docs" / "screenshots"
FOUR_PAGES = CORPUS / "004-pdflatex-4-pages" / "pdflatex-4-pages.pdf"
ENCRYPTED = CORPUS / "005-libreoffice-writer-password" / "libreoffice-writer-password.pdf"
CORPUS_PASSWORD = "openpassword"  # the corpus README: the LibreOffice test file's password
WIDE, NARROW = {"width": 1280, "height": 860}, {"width": 400, "height": 860}

# A busy machine parses and answers slowly: wait for the page longer than Playwright's default 5 s.
expect.set_options(timeout=30_000)
# Browsers cannot be downloaded here: .ci/run installs Debian's chromium.
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs chromium (apt install chromium)")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One API server with two API keys and one worker for the module. The page shows whatever the API
    answers, so a tiny random Qwen3-Next checkpoint does the work: it reads a document chunk by chunk in
    seconds on a busy CPU, reporting progress after each small chunk, so that a cancel lands mid-read."""
    tmp_path = tmp_path_factory.mktemp("webui")
    keys = [f"key-{uuid.uuid4().hex}", f"key-{uuid.uuid4().hex}"]
    env = service_env(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'docproc.db'}",
        DOCPROC_MODEL=str(make_random_checkpoint(tmp_path / "qwen3-next-tiny")),
        DOCPROC_API_KEYS=",".join(keys),
        DOCPROC_CHUNK_TOKENS="128",
    )
    running = Service(env, tmp_path)
    running.keys = keys
    running.start_api()
    running.start_worker()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


def open_page(browser: Browser, service: Service, key: str, viewport: dict[str, int] = WIDE) -> Page:
    """A new browser session on the page, past the API key prompt."""
    page = browser.new_context(viewport=viewport, accept_downloads=True).new_page()
    page.goto(service.url + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Documents", level=1)).to_be_visible()
    return page


def snap(page: Page, name: str, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=full_page)


def upload(page: Page, *files: Path | dict) -> None:
    page.locator("#files").set_input_files(list(files))


def test_key_prompt_upload_summary_and_citation(browser: Browser, service: Service) -> None:
    page = browser.new_context(viewport=WIDE).new_page()
    page.goto(service.url + "/")
    # The server has keys: the page asks for one, and says so when it is wrong.
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    snap(page, "api-key")
    page.get_by_label("API key").fill(service.keys[0])
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Documents", level=1)).to_be_visible()

    # Several files at once through the picker; each reports its pages and tokens, the list shows them.
    upload(page, SAMPLE_PDF, FOUR_PAGES)
    expect(page.locator(".uploads li.done")).to_have_count(2)
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(2)
    sample_row = rows.filter(has_text=SAMPLE_PDF.name)
    expect(sample_row.locator('td[data-label="Pages"]')).to_have_text("3")
    expect(sample_row.locator('td[data-label="Size"]')).to_contain_text("KB")
    snap(page, "documents")
    page.set_viewport_size(NARROW)
    snap(page, "documents-400px")
    page.set_viewport_size(WIDE)

    # A document: its pages' text, and the summarize form.
    page.get_by_role("link", name=SAMPLE_PDF.name).click()
    expect(page.get_by_role("heading", name=SAMPLE_PDF.name, level=1)).to_be_visible()
    expect(page.locator("article.page")).to_have_count(3)
    expect(page.locator("#page-1")).to_contain_text("Solar Cooperative")
    snap(page, "document")
    page.get_by_label("Most words").first.fill("60")
    page.get_by_label("Method").first.select_option("extractive")  # the model's part is the cancel test's
    page.get_by_role("button", name="Summarize").click()

    # The job: the bar is full once it succeeded, then the summary and its cited pages appear.
    expect(page.get_by_role("heading", name=f"Summary of {SAMPLE_PDF.name}")).to_be_visible()
    expect(page.locator(".status")).to_have_text("succeeded", timeout=120_000)
    bar = page.get_by_label("Progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") != "1"
    expect(page.get_by_role("heading", name="Summary", exact=True)).to_be_visible()
    expect(page.locator(".result")).to_contain_text("Drawn from pages")
    snap(page, "job")

    # A citation opens the document at the cited page.
    citation = page.locator(".source-pages a").first
    cited = int(citation.inner_text().split()[1].split("–")[0])
    citation.click()
    expect(page).to_have_url(re.compile(rf"#/documents/doc_[0-9a-f]{{32}}/pages/{cited}$"))
    expect(page.get_by_role("heading", name=SAMPLE_PDF.name, level=1)).to_be_visible()
    expect(page.locator(f"#page-{cited}")).to_be_focused()
    expect(page.locator(f"#page-{cited}")).to_have_class("page cited")
    snap(page, "document-cited-page", full_page=False)
    page.context.close()


def test_cancel_a_running_job(browser: Browser, service: Service) -> None:
    page = open_page(browser, service, service.keys[0])
    upload(page, {"name": "licenses.txt", "mimeType": "text/plain", "buffer": local_training_text().encode()})
    page.locator(".uploads li.done a").click()
    expect(page.get_by_role("heading", name="licenses.txt", level=1)).to_be_visible()
    page.get_by_role("button", name="Summarize").click()
    bar = page.get_by_label("Progress")
    # The bar moves: part done, not full.
    deadline = time.monotonic() + 300
    while float(bar.get_attribute("value") or 0) == 0:
        assert time.monotonic() < deadline, "no progress in time"
        time.sleep(0.1)
    assert 0 < float(bar.get_attribute("value") or 0) < float(bar.get_attribute("max") or 0)
    expect(page.locator(".status")).to_have_text("running")
    snap(page, "job-running")
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator(".status")).to_have_text("cancelled", timeout=60_000)
    expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()
    expect(page.get_by_text("The job was cancelled before it finished.")).to_be_visible()
    page.context.close()


def test_upload_errors_are_shown_next_to_the_file(browser: Browser, service: Service) -> None:
    page = open_page(browser, service, service.keys[0])
    upload(page, {"name": "empty.txt", "mimeType": "text/plain", "buffer": b""})
    empty_row = page.locator(".uploads li").filter(has_text="empty.txt")
    expect(empty_row.get_by_role("alert")).to_have_text("The file is empty.")

    # A password-protected PDF asks for its password and retries the upload with it.
    upload(page, ENCRYPTED)
    row = page.locator(".uploads li").filter(has_text=ENCRYPTED.name)
    expect(row.get_by_role("alert")).to_contain_text("password")
    password = row.get_by_label(f"Password for {ENCRYPTED.name}")
    expect(password).to_be_focused()
    password.fill("not-the-password")
    password.press("Enter")  # the keyboard alone
    expect(row.get_by_role("alert")).to_contain_text("wrong", ignore_case=True)
    snap(page, "upload-errors")
    row.get_by_label(f"Password for {ENCRYPTED.name}").fill(CORPUS_PASSWORD)
    row.get_by_role("button", name="Open and upload").click()
    expect(row).to_contain_text("Uploaded: 1 pages")
    expect(page.locator("table.list")).to_contain_text(ENCRYPTED.name)

    # A schema that is not JSON is refused next to the extract form, before anything is sent.
    page.get_by_role("link", name=ENCRYPTED.name).click()
    page.get_by_label("JSON schema of the data").fill("{not json")
    page.get_by_role("button", name="Extract").click()
    extract_form = page.locator("form").filter(has=page.get_by_role("heading", name="Extract data"))
    expect(extract_form.get_by_role("alert")).to_contain_text("not valid JSON")
    page.context.close()


def test_batch_from_selected_documents(browser: Browser, service: Service) -> None:
    page = open_page(browser, service, service.keys[0])
    upload(page, SAMPLE_PDF, FOUR_PAGES)
    expect(page.locator(".uploads li.done")).to_have_count(2)
    for name in (SAMPLE_PDF.name, FOUR_PAGES.name):
        page.get_by_label(f"Select {name}").check()
    batch_form = page.locator("form").filter(has_text="as a batch")
    batch_form.get_by_label("Method").select_option("extractive")
    page.get_by_role("button", name="Create batch of 2").click()
    expect(page.locator(".status").first).to_have_text("completed", timeout=120_000)
    bar = page.get_by_label("Progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") == "2"
    expect(page.locator("table.list tbody tr")).to_have_count(2)
    snap(page, "batch")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download results (JSONL)").click()
    lines = [json.loads(line) for line in Path(download.value.path()).read_text().splitlines()]
    assert [line["status"] for line in lines] == ["succeeded", "succeeded"]
    assert all(line["result"]["summary"] for line in lines)
    page.get_by_role("link", name="Batches", exact=True).first.click()
    expect(page.get_by_role("heading", name="Batches", level=1)).to_be_visible()
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    snap(page, "batches")
    page.context.close()


def test_another_key_sees_nothing(browser: Browser, service: Service) -> None:
    owner = open_page(browser, service, service.keys[0])
    upload(owner, FOUR_PAGES)
    expect(owner.locator(".uploads li.done")).to_have_count(1)
    document_url = owner.locator(".uploads li.done a").get_attribute("href")
    owner.context.close()

    other = open_page(browser, service, service.keys[1])
    expect(other.get_by_text("No documents yet")).to_be_visible()
    other.goto(f"{service.url}/{document_url}")
    expect(other.get_by_role("alert")).to_contain_text("No document with id")
    other.get_by_role("link", name="Batches", exact=True).first.click()
    expect(other.get_by_text("No batches yet")).to_be_visible()
    # Forgetting the key asks for one again.
    other.get_by_role("button", name="Forget API key").click()
    expect(other.get_by_label("API key")).to_be_visible()
    other.context.close()
