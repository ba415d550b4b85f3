from typing import Annotated

from fastapi import APIRouter, Depends, Form, Response, UploadFile, status

from docproc import service
from docproc.api.deps import OwnerDep, SessionDep, declare_idempotency_key
from docproc.api.schemas import (
    DocumentOut,
    Limit,
    Offset,
    Page,
    PageNumber,
    PageOut,
    PagesLimit,
    error_responses,
)
from docproc.ingestion import OcrMode

router = APIRouter(prefix="/v1/documents", tags=["documents"], responses=error_responses(401, 422))


@router.post(
    "",
    response_model=DocumentOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(declare_idempotency_key)],
    responses={200: {"model": DocumentOut, "description": "The owner already uploaded this file."}}
    | error_responses(400, 408, 409, 413, 415, 429, 503),
)
def upload_document(
    file: UploadFile,
    session: SessionDep,
    owner: OwnerDep,
    response: Response,
    password: Annotated[str | None, Form()] = None,
    ocr: Annotated[
        OcrMode,
        Form(description="OCR pages without a text layer (auto), every page (force) or none (off)."),
    ] = OcrMode.auto,
) -> DocumentOut:
    filename = service.checked_filename(file.filename)
    document, created = service.add_document(session, owner, filename, file.file, password, ocr)
    if not created:
        response.status_code = status.HTTP_200_OK
    return DocumentOut.model_validate(document)


@router.get("", response_model=Page[DocumentOut])
def list_documents(
    session: SessionDep, owner: OwnerDep, limit: Limit = 50, offset: Offset = 0
) -> Page[DocumentOut]:
    documents, total = service.list_documents(session, owner, limit, offset)
    return Page(
        data=[DocumentOut.model_validate(d) for d in documents], total=total, limit=limit, offset=offset
    )


@router.get("/{document_id}", response_model=DocumentOut, responses=error_responses(404))
def get_document(document_id: str, session: SessionDep, owner: OwnerDep) -> DocumentOut:
    return DocumentOut.model_validate(service.get_document(session, owner, document_id))


@router.get("/{document_id}/pages", response_model=Page[PageOut], responses=error_responses(404))
def list_pages(
    document_id: str,
    session: SessionDep,
    owner: OwnerDep,
    first: PageNumber = None,
    last: PageNumber = None,
    limit: PagesLimit = 50,
    offset: Offset = 0,
) -> Page[PageOut]:
    """A document's pages in order (numbers from `first` to `last` when given): the text the model reads."""
    pages, total = service.list_pages(session, owner, document_id, first, last, limit, offset)
    return Page(data=[PageOut.model_validate(p) for p in pages], total=total, limit=limit, offset=offset)


@router.delete("/{document_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 409))
def delete_document(document_id: str, session: SessionDep, owner: OwnerDep) -> None:
    service.delete_document(session, owner, document_id)
