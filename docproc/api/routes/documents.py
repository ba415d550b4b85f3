from typing import Annotated

from fastapi import APIRouter, Form, Response, UploadFile, status

from docproc import service
from docproc.api.deps import OwnerDep, SessionDep
from docproc.api.schemas import DocumentOut, Limit, Offset, Page, error_responses

router = APIRouter(prefix="/v1/documents", tags=["documents"], responses=error_responses(401, 422))


@router.post(
    "",
    response_model=DocumentOut,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": DocumentOut, "description": "The owner already uploaded this file."}}
    | error_responses(400, 408, 413, 415, 503),
)
def upload_document(
    file: UploadFile,
    session: SessionDep,
    owner: OwnerDep,
    response: Response,
    password: Annotated[str | None, Form()] = None,
) -> DocumentOut:
    filename = service.checked_filename(file.filename)
    document, created = service.add_document(session, owner, filename, file.file, password)
    if not created:
        response.status_code = status.HTTP_200_OK
    return DocumentOut.of(document)


@router.get("", response_model=Page[DocumentOut])
def list_documents(
    session: SessionDep, owner: OwnerDep, limit: Limit = 50, offset: Offset = 0
) -> Page[DocumentOut]:
    documents, total = service.list_documents(session, owner, limit, offset)
    return Page(data=[DocumentOut.of(d) for d in documents], total=total, limit=limit, offset=offset)


@router.get("/{document_id}", response_model=DocumentOut, responses=error_responses(404))
def get_document(document_id: str, session: SessionDep, owner: OwnerDep) -> DocumentOut:
    return DocumentOut.of(service.get_document(session, owner, document_id))


@router.delete("/{document_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 409))
def delete_document(document_id: str, session: SessionDep, owner: OwnerDep) -> None:
    service.delete_document(session, owner, document_id)
