"""GET /v1/documents/{id}/pages: each page's text and source, paged and bounded by page numbers."""

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.conftest import SAMPLE_PDF, Service
from tests.docproc.ingestion.test_ocr import png_header_only
from tests.docproc.ingestion.test_office import make_docx, rewritten

ZIP_BOMB_BYTES = 8 << 20
API_ENV = {"DOCPROC_MAX_PAGES_PER_REQUEST": "60", "DOCPROC_MAX_INFLATED_ARCHIVE_BYTES": str(4 << 20)}


def upload(client, name: str, content: bytes) -> dict:
    response = client.post("/v1/documents", files={"file": (name, content)})
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_pages_give_number_text_and_source(module_api: Service) -> None:
    with module_api.client(module_api.keys[0]) as client:
        pdf = upload(client, "report.pdf", SAMPLE_PDF.read_bytes())
        listing = client.get(f"/v1/documents/{pdf['id']}/pages").json()
        assert listing["total"] == 3 and listing["limit"] == 50 and listing["offset"] == 0
        assert [page["number"] for page in listing["data"]] == [1, 2, 3]
        assert {page["source"] for page in listing["data"]} == {"text_layer"}
        assert "cooperative" in listing["data"][0]["text"].lower()

        text = upload(client, "notes.txt", b"first page\fsecond page\fthird page\ffourth page")
        pages = client.get(f"/v1/documents/{text['id']}/pages", params={"first": 2, "last": 4, "limit": 2})
        assert pages.json() == {
            "data": [
                {"number": 2, "text": "second page", "source": "text"},
                {"number": 3, "text": "third page", "source": "text"},
            ],
            "total": 3,
            "limit": 2,
            "offset": 0,
        }
        rest = client.get(
            f"/v1/documents/{text['id']}/pages", params={"first": 2, "limit": 2, "offset": 2}
        ).json()
        assert [page["number"] for page in rest["data"]] == [4] and rest["total"] == 3
        assert client.get(f"/v1/documents/{text['id']}/pages", params={"first": 5}).json()["data"] == []


@pytest.mark.parametrize(
    "params", [{"limit": 61}, {"limit": 0}, {"first": 0}, {"last": -1}, {"offset": -1}, {"first": "x"}]
)
def test_out_of_range_queries_are_refused(module_api: Service, params: dict) -> None:
    with module_api.client(module_api.keys[0]) as client:
        document = upload(client, "notes.txt", b"one page of notes")
        response = client.get(f"/v1/documents/{document['id']}/pages", params=params)
        assert response.status_code == 422, response.text
        assert response.json()["detail"]["code"] == "invalid_request"


def test_pages_of_another_owners_document_are_not_found(module_api: Service) -> None:
    with module_api.client(module_api.keys[0]) as alice, module_api.client(module_api.keys[1]) as bob:
        document = upload(alice, "notes.txt", b"private notes of alice")
        for path in (f"/v1/documents/{document['id']}/pages", "/v1/documents/doc_nothing/pages"):
            response = bob.get(path)
            assert response.status_code == 404 and response.json()["detail"]["code"] == "not_found"


def scan_tiff(pages: list[list[str]]) -> bytes:
    """A multi-page TIFF, one frame per page, each with a few lines of text."""
    frames = []
    for lines in pages:
        frame = Image.new("L", (1400, 80 + 70 * len(lines)), "white")
        draw = ImageDraw.Draw(frame)
        for index, line in enumerate(lines):
            draw.text((40, 40 + 70 * index), line, fill="black", font=ImageFont.load_default(size=32))
        frames.append(frame)
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


SCAN_PAGES = [
    ["The Riverside solar cooperative was founded in 2019.", "Forty-two households built it together."],
    ["In 2025 the cooperative grew to 402 member households.", "Revenue reached 412,000 euros."],
    ["A battery of 2 megawatt-hours was installed in the spring.", "It stores the midday surplus."],
]


def test_ocr_option_and_a_summary_citing_ocr_pages(module_api: Service) -> None:
    with module_api.client(module_api.keys[0]) as client:
        scan = scan_tiff(SCAN_PAGES)
        refused = client.post("/v1/documents", files={"file": ("scan.tiff", scan)}, data={"ocr": "off"})
        assert refused.status_code == 422 and refused.json()["detail"]["code"] == "ocr_off"
        unknown = client.post("/v1/documents", files={"file": ("scan.tiff", scan)}, data={"ocr": "maybe"})
        assert unknown.status_code == 422 and unknown.json()["detail"]["code"] == "invalid_request"

        document = client.post("/v1/documents", files={"file": ("scan.tiff", scan)}, data={"ocr": "auto"})
        assert document.status_code == 201, document.text
        assert document.json()["content_type"] == "image/tiff" and document.json()["pages"] == 3
        pages = client.get(f"/v1/documents/{document.json()['id']}/pages").json()["data"]
        assert [(page["number"], page["source"]) for page in pages] == [(1, "ocr"), (2, "ocr"), (3, "ocr")]
        assert "402 member households" in pages[1]["text"]

        module_api.start_worker()
        job = client.post(
            "/v1/jobs",
            json={"document_id": document.json()["id"], "options": {"method": "extractive", "max_words": 40}},
        )
        done = module_api.wait_job(client, job.json()["id"], {"succeeded", "failed"})
        assert done["status"] == "succeeded", done
        result = client.get(f"/v1/jobs/{done['id']}/result").json()
        assert result["source_pages"] and all(
            1 <= first <= last <= 3 for first, last in result["source_pages"]
        )
        assert "(Drawn from page" in result["summary"]


def bad_archives(tmp_path: Path) -> dict[str, tuple[bytes, int, str]]:
    report = make_docx(tmp_path / "report.docx")
    whole = report.read_bytes()
    bomb = rewritten(report, {"word/media/zeros.bin": bytes(ZIP_BOMB_BYTES)})
    return {
        "truncated docx": (whole[: len(whole) // 2], 422, "truncated_document"),
        "damaged docx": (rewritten(report, {"word/document.xml": b"<not xml"}), 422, "malformed_document"),
        "zip bomb": (bomb, 422, "decompression_bomb"),
        "image bomb": (png_header_only(100_000, 100_000), 422, "decompression_bomb"),
        "blank image": (blank_png(), 422, "no_text"),
    }


def blank_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 200), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def test_bad_documents_are_refused_and_leave_nothing(module_api: Service, tmp_path: Path) -> None:
    blob_dir = Path(module_api.env["DOCPROC_DATA_DIR"]) / "blobs"
    with module_api.client(module_api.keys[1]) as client:
        before = client.get("/v1/documents").json()["total"]
        blobs_before = sorted(blob_dir.rglob("*"))
        for case, (content, status, code) in bad_archives(tmp_path).items():
            response = client.post("/v1/documents", files={"file": ("upload.bin", content)})
            assert response.status_code == status, (case, response.text)
            assert response.json()["detail"]["code"] == code, case
        assert client.get("/v1/documents").json()["total"] == before
        assert sorted(blob_dir.rglob("*")) == blobs_before
