"""Batches over JSON: upload (multipart file or JSON items), list with progress, steer."""

import tempfile
import uuid
from typing import Annotated, Any, BinaryIO

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from server.auth.deps import AdminPrincipal, scoped
from server.auth.service import Principal
from server.batches import service
from server.batches.preview import Preview
from server.batches.schemas import (
    UPLOAD_BODY,
    BatchProgress,
    BatchRead,
    BatchUpdate,
    ImportResult,
    PreviewCandidateRead,
    PreviewItemRead,
    PreviewRead,
    RowErrorRead,
    upload_options,
)
from server.config import settings
from server.db import SessionDep
from server.errors import Invalid, TooLarge, size_text
from server.models import Scope
from server.projects import lifecycle
from server.projects import service as projects
from server.projects.schemas import Deleted

router = APIRouter(tags=["batches"])
ItemsWriter = Annotated[Principal, Depends(scoped(Scope.items_write))]


async def _upload_source(request: Request) -> tuple[BinaryIO, str | None, dict[str, Any]]:
    """The uploaded bytes as a file, its name, and the other fields, from multipart or JSON."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Invalid("Attach the file as the multipart field 'file'.")
        return upload.file, upload.filename, {k: v for k, v in form.items() if k != "file"}
    if content_type.startswith("application/json"):
        try:
            body = orjson.loads(await _json_body(request))
        except orjson.JSONDecodeError as exc:
            raise Invalid(f"The request body is not valid JSON: {exc}.") from None
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise Invalid('Send {"items": [...]} with one object per item, in the native JSONL shape.')
        spool: BinaryIO = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # type: ignore[assignment]  # noqa: SIM115
        for index, item in enumerate(body["items"]):
            try:
                spool.write(orjson.dumps(item) + b"\n")
            except orjson.JSONEncodeError:  # nested deeper than orjson writes (255 levels)
                raise Invalid(f"items[{index}] is nested too deeply to store; flatten its metadata.") from None
        spool.seek(0)
        return spool, None, {k: v for k, v in body.items() if k != "items"} | {"encoding": "jsonl"}
    raise Invalid("Upload a file as multipart/form-data (field 'file'), or JSON items as application/json.")


async def _json_body(request: Request) -> bytes:
    """A JSON upload's body, refused past its own limit: it is parsed whole, unlike a file."""
    limit = settings.max_json_upload_bytes
    refusal = TooLarge(
        f"A JSON upload may be at most {size_text(limit)} (ASSAY_MAX_JSON_UPLOAD_BYTES); send a larger batch "
        "as a file (multipart field 'file', JSONL)."
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise refusal
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise refusal
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/projects/{project_id}/batches",
    response_model=ImportResult,
    status_code=201,
    responses={200: {"model": ImportResult, "description": "Every item already existed: no new batch."}},
    openapi_extra=UPLOAD_BODY,
)
async def upload_batch(
    project_id: uuid.UUID, request: Request, principal: ItemsWriter, session: SessionDep
) -> JSONResponse:
    """Import JSONL, CSV or Parquet (native, HH-RLHF or TRL records) as a new batch, all or nothing."""
    project = await projects.get_accessible(session, principal, project_id)
    file, filename, fields = await _upload_source(request)
    try:
        options = upload_options(fields)
        result = await service.import_file(
            session,
            project=project,
            file=file,
            filename=filename,
            name=options.name,
            format=options.format,
            encoding=options.encoding,
            priority=options.priority,
            actor=principal.user,
        )
    finally:
        file.close()
    return JSONResponse(result.model_dump(mode="json"), status_code=201 if result.id else 200)


@router.post("/projects/{project_id}/batches/preview", response_model=PreviewRead, openapi_extra=UPLOAD_BODY)
async def preview_batch(project_id: uuid.UUID, request: Request, principal: ItemsWriter, session: SessionDep) -> object:
    """A dry run of the upload (same body and fields): the detected format, counts, the first items as raters
    will see them and the errors by line; nothing is written. Duplicates of items already in the project are
    found only by the upload itself."""
    await projects.get_accessible(session, principal, project_id)
    file, filename, fields = await _upload_source(request)
    try:
        shown = await service.preview_upload(file, filename=filename, options=upload_options(fields))
    finally:
        file.close()
    return _preview_read(shown)


def _preview_read(preview: Preview) -> PreviewRead:
    would_import = preview.error_count == 0 and preview.item_count > 0
    read = f"{preview.item_count:,} item{'s' if preview.item_count != 1 else ''} read"
    if preview.error_count:
        outcome = f", {preview.error_count:,} error(s): uploading it now would be refused whole."
    elif preview.item_count:
        outcome = ", no errors. Nothing was imported."
    else:
        outcome = ": the file holds no items."
    return PreviewRead(
        format=preview.format_name,
        items=preview.item_count,
        error_count=preview.error_count,
        errors=[RowErrorRead(line=e.line, field=e.field, message=e.message) for e in preview.errors],
        summary=preview.summary,
        first_items=[
            PreviewItemRead(
                line=item.line,
                external_id=item.external_id,
                prompt=item.prompt,
                candidates=[
                    PreviewCandidateRead(text=c.text, messages=c.messages, model=c.model) for c in item.candidates
                ],
            )
            for item in preview.items
        ],
        would_import=would_import,
        message=(f"{preview.summary} " if preview.summary else "") + read + outcome,
    )


@router.get("/projects/{project_id}/batches", response_model=list[BatchProgress])
async def list_batches(project_id: uuid.UUID, admin: AdminPrincipal, session: SessionDep) -> object:
    """The project's batches with their progress."""
    return await service.list_with_progress(session, await projects.get_accessible(session, admin, project_id))


@router.patch("/batches/{batch_id}", response_model=BatchRead)
async def steer_batch(batch_id: uuid.UUID, body: BatchUpdate, admin: AdminPrincipal, session: SessionDep) -> object:
    """Pause or resume a batch, rename it, set its priority (higher is served first), archive or unarchive it."""
    batch = await service.get(session, batch_id)
    return await service.steer(session, batch, body, actor=admin.user)


@router.delete("/batches/{batch_id}", response_model=Deleted)
async def delete_batch(
    batch_id: uuid.UUID,
    admin: AdminPrincipal,
    session: SessionDep,
    confirm: str | None = Query(default=None, max_length=300, description="The batch's name, typed to confirm."),
) -> object:
    """Delete the batch with its items, assignments and judgments; export manifests are kept. Without `confirm`
    (the batch's name) it refuses with 422, naming what would go. To stop serving it but keep everything,
    archive it instead (`PATCH` with `archived: true`)."""
    batch = await service.get(session, batch_id)
    name = batch.name
    removed = await lifecycle.delete_batch(session, batch, confirm=confirm, actor=admin.user)
    return lifecycle.deleted_result("batch", name, removed)
