"""Export pages: the admin's download page per project, and the trainer's landing page.

Both only link to the JSON API's export (`GET /api/v1/projects/{id}/export`), which accepts the
browser session: there is one export path, with one set of rules and one manifest per pull.
"""

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.auth import service as auth
from server.db import SessionDep
from server.exports import service
from server.exports.encoders import Encoding
from server.exports.formats import ExportFormat, Granularity
from server.items.service import batch_names
from server.models import Export, Scope
from server.projects import service as projects
from server.web.deps import AdminPagePrincipal, ExportPagePrincipal
from server.web.templating import render

router = APIRouter(include_in_schema=False)

FORMAT_LABELS = {
    ExportFormat.trl: "TRL pairs (prompt, chosen, rejected)",
    ExportFormat.trl_unpaired: "TRL unpaired (prompt, completion, label)",
    ExportFormat.openai: "OpenAI preference fine-tuning",
    ExportFormat.hh: "HH-RLHF (chosen, rejected transcripts)",
    ExportFormat.raw: "Raw judgments (every field)",
    ExportFormat.critiques: "Critique ratings (critique, span, verdict, helpful)",
    ExportFormat.tree: "Task trees (each completed item with its subtasks' answers, nested)",
}
MANIFESTS_SHOWN = 5


def _selection(record: Export) -> dict[str, object]:
    """The filters that choose rows (the cursor is bound to them); the manifest also keeps the
    row shape (`margin`, `ids`), which does not."""
    return {k: v for k, v in record.filters.items() if k not in ("margin", "ids")}


def _resume(manifests: list[Export], database: uuid.UUID) -> str | None:
    """The cursor to continue the default pull (per judgment, no filters) from, if there was one."""
    default = service.ExportRequest().filters()
    last = next((m for m in manifests if _selection(m) == default and m.status == "complete"), None)
    return service.cursor_of(last, last.cursor_to, database) if last else None


@router.get("/admin/projects/{project_id}/export")
async def export_page(
    request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """A download button per format, encoding and granularity, with the export's filters."""
    project = await projects.get_accessible(session, admin, project_id)
    database = await service.database_id(session)
    batch = request.query_params.get("batch", "")
    context = {
        "project": project,
        "formats": FORMAT_LABELS,
        "encodings": list(Encoding),
        "granularities": list(Granularity),
        "batches": await batch_names(session, project),
        "batch": batch,
        "empty_items": await service.why_no_items(session, project),
        "manifests": (await service.list_manifests(session, project.id))[:MANIFESTS_SHOWN],
        "cursor_of": lambda record, xid: service.cursor_of(record, xid, database),
    }
    return render(request, "admin/exports/page.html", context)


@router.get("/trainer")
async def trainer_page(request: Request, principal: ExportPagePrincipal, session: SessionDep) -> Response:
    """What a trainer sees after logging in: projects, snippets with their tokens' scopes, last pulls."""
    now = datetime.now(UTC)
    tokens = [t for t in await auth.list_tokens(session, principal.user) if auth.is_live(t, now)]
    shown = await projects.list_accessible(session, principal)
    database = await service.database_id(session)
    rows = []
    for project in shown:
        manifests = await service.list_manifests(session, project.id)
        empty = await service.why_no_items(session, project)
        rows.append((project, manifests[:MANIFESTS_SHOWN], empty, _resume(manifests, database)))
    context = {
        "projects": rows,
        "tokens": tokens,
        "export_tokens": [t for t in tokens if Scope.export_read in t.scopes or Scope.admin in t.scopes],
        "base_url": str(request.base_url).rstrip("/"),
        "cursor_of": lambda record, xid: service.cursor_of(record, xid, database),
    }
    return render(request, "exports/trainer.html", context)
