from typing import Annotated

from fastapi import APIRouter, Form, Query, Response, UploadFile, status

from docproc import service
from docproc.api.deps import OwnerDep, SessionDep
from docproc.api.schemas import DocumentOut, Page

router = APIRouter(prefix="/v1/documents", tags=["documents"])


@router.post("", response_model=DocumentOut, status_code=status.HTTP_201_CREATED)
def upload_document(
    file: UploadFile,
    session: SessionDep,
    owner: OwnerDep,
    response: Response,
    password: Annotated[str | None, Form()] = None,
) -> DocumentOut:
    document, created = service.add_document(session, owner, file.filename or "upload", file.file, password)
    if not created:
        response.status_code = status.HTTP_200_OK
    return DocumentOut.of(document)


@router.get("", response_model=Page[DocumentOut])
def list_documents(
    session: SessionDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[DocumentOut]:
    documents, total = service.list_documents(session, owner, limit, offset)
    return Page(data=[DocumentOut.of(d) for d in documents], total=total, limit=limit, offset=offset)


@router.get("/{document_id}", response_model=DocumentOut)
def get_document(document_id: str, session: SessionDep, owner: OwnerDep) -> DocumentOut:
    return DocumentOut.of(service.get_document(session, owner, document_id))


@router.delete("/{document_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_document(document_id: str, session: SessionDep, owner: OwnerDep) -> None:
    service.delete_document(session, owner, document_id)
