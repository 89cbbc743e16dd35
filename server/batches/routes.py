"""Admin pages for batches: upload a file (refusals listed by line), progress, pause/resume, priority."""

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from server.batches import service
from server.batches.formats import Encoding, ImportFormat
from server.batches.preview import Preview
from server.batches.schemas import BatchUpdate, ImportResult, UploadOptions, upload_options
from server.config import settings
from server.db import SessionDep
from server.errors import Invalid
from server.models import Batch, Project
from server.projects import lifecycle
from server.projects import service as projects
from server.web.deps import AdminPagePrincipal
from server.web.forms import done, read_form, validate
from server.web.templating import is_htmx, render

router = APIRouter(prefix="/admin", include_in_schema=False)

NO_FILE = "Choose a file to upload."
STEER_LABELS = {"priority": "Priority", "status": "Status", "archived": "Archived"}


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
    shown = await service.preview_upload(file.file, filename=file.filename, options=options)
    return await _page(request, session, project, preview=shown)


@router.post("/batches/{batch_id}")
async def steer(request: Request, batch_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """Pause or resume a batch, or set its priority (higher is served first)."""
    batch = await service.get(session, batch_id)
    project = await projects.get_accessible(session, admin, batch.project_id)
    form = await read_form(request)
    values = {k: str(form[k]) for k in ("status", "priority", "archived") if isinstance(form.get(k), str)}
    data, errors = validate(BatchUpdate, values, STEER_LABELS)
    if data is None:
        return await _page(request, session, project, notice=("error", " ".join(errors.values())), status_code=422)
    batch = await service.steer(session, batch, data, actor=admin.user)
    if "archived" in values:
        message = (
            f"Batch “{batch.name}” archived: nothing of it is served and its live leases ended; everything is kept "
            "for export."
            if batch.archived_at
            else f"Batch “{batch.name}” unarchived: its items are served again."
        )
    elif "status" in values:
        message = f"Batch “{batch.name}” {'paused' if batch.status == 'paused' else 'resumed'}."
    else:
        message = f"Batch “{batch.name}” now has priority {batch.priority}."
    if not is_htmx(request):
        return done(request, f"/admin/projects/{project.id}/batches", message)
    return await _page(request, session, project, notice=("success", message))


@router.get("/batches/{batch_id}/delete")
async def confirm_delete(
    request: Request, batch_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """What deleting the batch removes, and the field to type its name in."""
    batch = await service.get(session, batch_id)
    project = await projects.get_accessible(session, admin, batch.project_id)
    return await _confirm_page(request, session, project, batch)


async def _confirm_page(
    request: Request, session: SessionDep, project: Project, batch: Batch, *, error: str | None = None
) -> Response:
    impact = await lifecycle.impact(session, batch_id=batch.id)
    context = {
        "project": project,
        "kind": "batch",
        "name": batch.name,
        "sentence": lifecycle.confirm_sentence("batch", batch.name, impact),
        "live_leases": impact.live_leases,
        "action": f"/admin/batches/{batch.id}/delete",
        "back": f"/admin/projects/{project.id}/batches",
        "error": error,
    }
    return render(request, "admin/confirm_delete.html", context, status_code=422 if error else 200)


@router.post("/batches/{batch_id}/delete")
async def delete(request: Request, batch_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """Delete the batch once its name is typed; otherwise the confirmation again, saying what to type."""
    batch = await service.get(session, batch_id)
    project = await projects.get_accessible(session, admin, batch.project_id)
    confirm = (await read_form(request)).get("confirm")
    typed = confirm if isinstance(confirm, str) else None
    if not lifecycle.confirmed(batch.name, typed):
        error = f"Type the batch's name, “{batch.name}”, to delete it; nothing was deleted."
        return await _confirm_page(request, session, project, batch, error=error)
    name = batch.name
    removed = await lifecycle.delete_batch(session, batch, confirm=typed, actor=admin.user)
    return done(
        request, f"/admin/projects/{project.id}/batches", lifecycle.deleted_result("batch", name, removed).message
    )
