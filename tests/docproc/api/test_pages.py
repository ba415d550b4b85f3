"""GET /v1/documents/{id}/pages: each page's text and source, paged and bounded by page numbers."""

import pytest

from tests.conftest import SAMPLE_PDF, Service

API_ENV = {"DOCPROC_MAX_PAGES_PER_REQUEST": "60"}


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
