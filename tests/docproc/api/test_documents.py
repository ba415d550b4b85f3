"""Uploads over HTTP: extraction results, dedup, listing, deletion, ownership and every bad input."""

import gzip
import io
import zipfile
import zlib
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_PDF, Service
from tests.docproc.ingestion.pdfs import CORPUS_PASSWORD, ENCRYPTED, corpus_file


def upload(client, name: str, content: bytes, password: str | None = None):
    data = {"password": password} if password is not None else None
    return client.post("/v1/documents", files={"file": (name, content)}, data=data)


def test_upload_pdf_then_get_list_delete(api: Service) -> None:
    with api.client(api.keys[0]) as client:
        response = upload(client, "report.pdf", SAMPLE_PDF.read_bytes())
        assert response.status_code == 201, response.text
        document = response.json()
        assert document["content_type"] == "application/pdf"
        assert document["pages"] == 3
        assert document["tokens"] > 500
        assert len(document["sha256"]) == 64
        assert client.get(f"/v1/documents/{document['id']}").json() == document

        again = upload(client, "same-file-other-name.pdf", SAMPLE_PDF.read_bytes())
        assert again.status_code == 200 and again.json()["id"] == document["id"]

        text = upload(client, "notes.txt", b"Plain notes about the cooperative.\n" * 20)
        assert text.status_code == 201 and text.json()["content_type"] == "text/plain"

        listing = client.get("/v1/documents", params={"limit": 1}).json()
        assert listing["total"] == 2 and len(listing["data"]) == 1 and listing["limit"] == 1
        second = client.get("/v1/documents", params={"limit": 1, "offset": 1}).json()
        assert {listing["data"][0]["id"], second["data"][0]["id"]} == {document["id"], text.json()["id"]}

        assert client.delete(f"/v1/documents/{document['id']}").status_code == 204
        assert client.get(f"/v1/documents/{document['id']}").status_code == 404
        assert client.get("/v1/documents").json()["total"] == 1


def test_keys_see_only_their_own(api: Service) -> None:
    with api.client(api.keys[0]) as alice, api.client(api.keys[1]) as bob, api.client() as anonymous:
        document = upload(alice, "report.pdf", SAMPLE_PDF.read_bytes()).json()
        job = alice.post("/v1/jobs", json={"document_id": document["id"], "task": "summarize"})
        assert job.status_code == 201, job.text
        assert bob.get(f"/v1/documents/{document['id']}").status_code == 404
        assert bob.delete(f"/v1/documents/{document['id']}").status_code == 404
        assert bob.get("/v1/documents").json()["total"] == 0
        assert bob.post("/v1/jobs", json={"document_id": document["id"]}).status_code == 404
        assert bob.get(f"/v1/jobs/{job.json()['id']}").status_code == 404
        assert bob.post(f"/v1/jobs/{job.json()['id']}/cancel").status_code == 404
        assert bob.get(f"/v1/jobs/{job.json()['id']}/result").status_code == 404
        # Bob uploading the same bytes gets his own document.
        own = upload(bob, "report.pdf", SAMPLE_PDF.read_bytes())
        assert own.status_code == 201 and own.json()["id"] != document["id"]

        for response in (anonymous.get("/v1/documents"), api.client("wrong-key").get("/v1/documents")):
            assert response.status_code == 401
            assert response.json()["detail"]["code"] == "unauthorized"


def _bomb_pdf() -> bytes:
    """A valid one-page PDF whose content stream inflates to 300 MB."""
    stream = zlib.compress(b"0" * (300 * 1024 * 1024), 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def _zip() -> bytes:
    """A ZIP archive that is no DOCX, PPTX or EPUB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "Not a document format.")
    return buffer.getvalue()


def _scanned_pdf(_: Path) -> bytes:
    """A PDF whose only page is an image without text: no text layer, nothing for OCR."""
    return corpus_file("019-grayscale-image/grayscale-image.pdf").read_bytes()


BAD_INPUTS = {
    "empty": ("empty.txt", lambda _: b"", 422, "empty_file"),
    "gif named pdf": ("photo.pdf", lambda _: b"GIF89a" + b"\0" * 64, 415, "unsupported_type"),
    "zip": ("archive.txt", lambda _: _zip(), 415, "unsupported_type"),
    "truncated pdf": (
        "half.pdf",
        lambda _: SAMPLE_PDF.read_bytes()[: len(SAMPLE_PDF.read_bytes()) // 2],
        422,
        None,
    ),
    "garbage after magic": ("bad.pdf", lambda _: b"%PDF-1.7\n" + bytes(range(256)) * 40, 422, None),
    "decompression bomb": ("bomb.pdf", lambda _: _bomb_pdf(), 422, None),
    "gzip bomb": ("bomb.txt", lambda _: gzip.compress(b"\0" * (50 * 1024 * 1024)), 415, "unsupported_type"),
    "image-only pdf without text": ("scan.pdf", _scanned_pdf, 422, "no_text"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_uploads_get_clear_errors(api: Service, tmp_path: Path, case: str) -> None:
    name, make, status, code = BAD_INPUTS[case]
    with api.client(api.keys[0]) as client:
        response = upload(client, name, make(tmp_path))
        assert response.status_code == status, response.text
        detail = response.json()["detail"]
        assert detail["message"] and len(detail["message"]) > 10
        if code:
            assert detail["code"] == code
        # Nothing was stored, and the service still works.
        assert client.get("/v1/documents").json()["total"] == 0
        assert upload(client, "ok.txt", b"Still working fine after a bad upload.").status_code == 201


def test_encrypted_pdf_needs_the_right_password(api: Service) -> None:
    encrypted = corpus_file(ENCRYPTED).read_bytes()
    with api.client(api.keys[0]) as client:
        missing = upload(client, "secret.pdf", encrypted)
        assert missing.status_code == 422 and missing.json()["detail"]["code"] == "password_required"
        wrong = upload(client, "secret.pdf", encrypted, password="not-it")
        assert wrong.status_code == 422 and wrong.json()["detail"]["code"] == "wrong_password"
        right = upload(client, "secret.pdf", encrypted, password=CORPUS_PASSWORD)
        assert right.status_code == 201, right.text
        assert right.json()["pages"] == 1


def test_oversize_upload_is_refused_while_streaming(api: Service) -> None:
    big = b"word " * (3 * 1024 * 1024 // 5)
    with api.client(api.keys[0]) as client:
        declared = upload(client, "big.txt", big)
        assert declared.status_code == 413 and declared.json()["detail"]["code"] == "file_too_large"

        def chunks():  # no Content-Length: the limit must still hold
            body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
            yield body
            for _ in range(48):
                yield b"x" * 65536
            yield b"\r\n--b--\r\n"

        streamed = client.post(
            "/v1/documents", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
        assert streamed.status_code == 413
        assert client.get("/v1/documents").json()["total"] == 0


def test_job_options_are_validated(api: Service) -> None:
    with api.client(api.keys[0]) as client:
        document = upload(client, "notes.txt", b"Some notes to summarize later on.").json()
        assert client.post("/v1/jobs", json={"document_id": "doc_missing"}).status_code == 404
        bad = client.post("/v1/jobs", json={"document_id": document["id"], "options": {"max_words": 0}})
        assert bad.status_code == 422 and bad.json()["detail"]["code"] == "invalid_options"
        unknown = client.post("/v1/jobs", json={"document_id": document["id"], "options": {"colour": "red"}})
        assert unknown.status_code == 422
        wrong_task = client.post("/v1/jobs", json={"document_id": document["id"], "task": "translate"})
        assert wrong_task.status_code == 422
