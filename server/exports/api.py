"""Exports for trainers, streamed as JSONL with a cursor for the next pull."""

import uuid

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from server.auth.deps import ExportPrincipal
from server.db import SessionDep
from server.exports import service
from server.exports.formats import ExportFormat
from server.projects import service as projects

router = APIRouter(tags=["exports"])


@router.get("/projects/{project_id}/export", response_class=StreamingResponse)
async def export(
    project_id: uuid.UUID,
    request: Request,
    principal: ExportPrincipal,
    session: SessionDep,
    format: ExportFormat = ExportFormat.trl,
    after: str | None = Query(default=None, description="The Assay-Next-Cursor of your previous pull."),
) -> StreamingResponse:
    """Judgments finalised since `after`, as JSONL; the next cursor is in the Assay-Next-Cursor header.

    Assay-Held-Back counts judgments already committed that this pull leaves for the next one,
    because a transaction older than them was still open when the snapshot was taken.
    """
    await projects.get_accessible(session, principal, project_id)
    job = await service.open_export(request.app.state.engine, project_id=project_id, after=after, format=format)
    return StreamingResponse(
        job.lines(),
        media_type="application/x-ndjson",
        headers={
            "Assay-Next-Cursor": job.next_cursor,
            "Assay-Held-Back": str(job.held_back),
            "Cache-Control": "no-store",
        },
    )
