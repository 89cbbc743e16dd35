"""Admin pages for batches: upload a file (refusals listed by line), progress, pause/resume, priority."""

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from server.batches import preview, service
from server.batches.formats import Encoding, ImportFormat
from server.batches.preview import Preview
from server.batches.schemas import BatchUpdate, ImportResult, UploadOptions, upload_options
from server.config import settings
from server.db import SessionDep
from server.errors import Invalid
from server.models import Project
from server.projects import service as projects
from server.web.deps import AdminPagePrincipal
from server.web.forms import done, read_form, validate
from server.web.templating import is_htmx, render

router = APIRouter(prefix="/admin", include_in_schema=False)

NO_FILE = "Choose a file to upload."
STEER_LABELS = {"priority": "Priority", "status": "Status"}


async def _page(
    request: Request,
    session: SessionDep,
    project: Project,
    *,
    result: ImportResult | None = None,
    refusal: dict[str, Any] | None = None,
    notice: tuple[str, str] | None = None,
    preview: Preview | None = None,
    status_code: int = 200,
) -> Response:
    """The batches page, or the block an htmx request targets (the panel after an upload or a change)."""
    context = {
        "project": project,
        "batches": await service.list_with_progress(session, project),
        "result": result,
        "refusal": refusal,
        "notice": notice,
        "preview": preview,
        "formats": list(ImportFormat),
        "encodings": list(Encoding),
        "max_upload_bytes": settings.max_upload_bytes,
    }
    return render(request, "admin/batches/list.html", context, status_code=status_code)


@router.get("/projects/{project_id}/batches")
async def batches(request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """The upload form and every batch with its progress."""
    return await _page(request, session, await projects.get_accessible(session, admin, project_id))


@router.post("/projects/{project_id}/batches")
async def upload(request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """Import the uploaded file as a new batch; a refused file lists its errors by line and field."""
    project = await projects.get_accessible(session, admin, project_id)
    form = await read_form(request)
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        return await _page(request, session, project, refusal={"message": NO_FILE}, status_code=422)
    try:
        options = upload_options(form)
        if form.get("preview") == "true":
            return await _preview(request, session, project, file, options)
        # A savepoint, so a refused file leaves nothing behind while the page is still rendered
        # in this request's transaction (its objects stay loaded).
        async with session.begin_nested():
            result = await service.import_file(
                session,
                project=project,
                file=file.file,
                filename=file.filename,
                name=options.name,
                format=options.format,
                encoding=options.encoding,
                priority=options.priority,
                actor=admin.user,
            )
    except Invalid as exc:  # ImportRefused included: nothing was written
        refusal = {"message": exc.message, **exc.extra}
        return await _page(request, session, project, refusal=refusal, status_code=exc.status_code)
    finally:
        await file.close()
    if not is_htmx(request):
        return done(request, f"/admin/projects/{project.id}/batches", result.message)
    return await _page(request, session, project, result=result, status_code=201 if result.id else 200)


async def _preview(
    request: Request, session: SessionDep, project: Project, file: UploadFile, options: UploadOptions
) -> Response:
    """The dry run: the file parsed as the import would, nothing written; the page shows the first items."""
    shown = await run_in_threadpool(
        preview.preview_file,
        file.file,
        filename=file.filename,
        format=options.format,
        encoding=options.encoding,
        limits=service.import_limits(),
    )
    return await _page(request, session, project, preview=shown)


@router.post("/batches/{batch_id}")
async def steer(request: Request, batch_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """Pause or resume a batch, or set its priority (higher is served first)."""
    batch = await service.get(session, batch_id)
    project = await projects.get_accessible(session, admin, batch.project_id)
    form = await read_form(request)
    values = {k: str(form[k]) for k in ("status", "priority") if isinstance(form.get(k), str)}
    data, errors = validate(BatchUpdate, values, STEER_LABELS)
    if data is None:
        return await _page(request, session, project, notice=("error", " ".join(errors.values())), status_code=422)
    batch = await service.steer(session, batch, data, actor=admin.user)
    if "status" in values:
        message = f"Batch “{batch.name}” {'paused' if batch.status == 'paused' else 'resumed'}."
    else:
        message = f"Batch “{batch.name}” now has priority {batch.priority}."
    if not is_htmx(request):
        return done(request, f"/admin/projects/{project.id}/batches", message)
    return await _page(request, session, project, notice=("success", message))
