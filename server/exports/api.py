"""Exports for trainers: streamed JSONL or Parquet, a cursor for the next pull, and a manifest."""

import uuid
from datetime import datetime

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from server.auth.deps import ExportPrincipal
from server.config import settings
from server.db import SessionDep
from server.errors import error_responses
from server.exports import service
from server.exports.encoders import Encoding, encoding_from_accept, gzipped
from server.exports.formats import Aggregation, ExportFormat, GoldItems, Granularity, Judges, Raters
from server.exports.limits import ExportResponse, principal_key
from server.exports.schemas import ManifestRead
from server.models import Export
from server.projects import service as projects
from server.quality.weighted import rater_fit

router = APIRouter(tags=["exports"])


def _accepts_gzip(accept_encoding: str | None) -> bool:
    for part in (accept_encoding or "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0")
    return False


def manifest(record: Export, database: uuid.UUID) -> ManifestRead:
    return ManifestRead(
        id=record.id,
        project_id=record.project_id,
        format=record.format,
        encoding=record.encoding,
        granularity=record.granularity,
        filters=record.filters,
        format_version=record.format_version,
        after=service.cursor_of(record, record.cursor_from, database) if record.cursor_from else None,
        next_cursor=service.cursor_of(record, record.cursor_to, database),
        status=record.status,
        aborted_reason=record.aborted_reason,
        rows=record.rows,
        bytes=record.bytes,
        sha256=record.sha256,
        created_at=record.created_at,
        finished_at=record.finished_at,
    )


def by_item(granularity: Granularity, completed: bool) -> bool:
    return completed or granularity == Granularity.item


@router.get(
    "/projects/{project_id}/export",
    response_class=StreamingResponse,
    responses=error_responses(
        described={
            409: "The cursor is another project's or another database's, or ahead of this database.",
            422: "The cursor was altered or belongs to other filters; or the filters contradict.",
            429: "Too many exports at once (this caller's, or the server's); see Retry-After.",
        }
    ),
)
async def export(
    project_id: uuid.UUID,
    request: Request,
    principal: ExportPrincipal,
    session: SessionDep,
    format: ExportFormat = ExportFormat.trl,
    encoding: Encoding | None = Query(default=None, description="jsonl or parquet; else from Accept; else jsonl."),
    granularity: Granularity = Granularity.judgment,
    batch_id: uuid.UUID | None = None,
    completed: bool = Query(default=False, description="Only judgments of completed items, once each item completes."),
    since: datetime | None = Query(default=None, description="Judgments (or completions) at or after this time."),
    until: datetime | None = Query(default=None, description="... and before this time."),
    min_agreement: float | None = Query(default=None, ge=0, le=1, description="granularity=item: pairs' agreement."),
    margin: bool = Query(default=False, description="trl: a margin column from strength (strength - 1)."),
    ids: bool = Query(
        default=False,
        description="Add judgment_id, revision, deleted (item granularity: item_id, aggregate_revision, deleted) "
        "so revised judgments can replace their earlier rows.",
    ),
    aggregation: Aggregation = Query(
        default=Aggregation.majority,
        description="granularity=item: majority per pair, or weighted by each rater's fitted reliability "
        "(Dawid-Skene), with a confidence column.",
    ),
    raters: Raters = Query(
        default=Raters.all,
        description="trusted: only judgments of raters who are members and not suspended when you pull "
        "(rows already delivered are never retracted).",
    ),
    gold: GoldItems = Query(
        default=GoldItems.exclude,
        description="granularity=item: include gold items, labelled by their gold answer.",
    ),
    judges: Judges = Query(
        default=Judges.human,
        description="Whose labels: human (the default: judgments of humans, items humans labelled), model "
        "(model judges' judgments, items they resolved under the hand-off), or all.",
    ),
    after: str | None = Query(default=None, description="The Assay-Next-Cursor of your previous pull."),
    accept: str | None = Header(default=None),
    accept_encoding: str | None = Header(default=None),
) -> StreamingResponse:
    """Rows finalised since `after`. Headers: Assay-Next-Cursor (pass back as `after`),
    Assay-Export-Id (its manifest: GET /api/v1/exports/{id}, with the body's sha256 once sent,
    or status aborted when the download was cut off),
    Assay-Held-Back (committed judgments this pull leaves for the next one because a
    transaction older than them was still open when the snapshot was taken), Assay-Revisions
    (how many judgments in this pull are revisions of ones delivered before: without ids=true,
    their earlier rows cannot be told apart; pull with ids=true to replace them), Assay-Empty-Reason
    (granularity=item or completed=true while no item is complete: why the export is empty).
    """
    project = await projects.get_accessible(session, principal, project_id)
    empty_reason = await service.why_no_items(session, project) if by_item(granularity, completed) else None
    ask = service.ExportRequest(
        format=format,
        encoding=encoding or encoding_from_accept(accept) or Encoding.jsonl,
        granularity=granularity,
        batch_id=batch_id,
        completed=completed,
        since=since,
        until=until,
        min_agreement=min_agreement,
        margin=margin,
        ids=ids,
        aggregation=aggregation,
        raters=raters,
        gold=gold,
        judges=judges,
    )
    ask.check(project)
    # The rater model is fitted once per data version (cached), before the snapshot is taken.
    fit = await rater_fit(session, project) if aggregation == Aggregation.weighted else None
    await session.commit()  # release this request's transaction before the export's snapshot
    state = request.app.state
    job = await service.open_export(
        state.engine,
        # Apps built without the lifespan (some tests) have no export pool of their own.
        getattr(state, "export_engine", state.engine),
        project=project,
        requester=principal.user,
        principal=principal_key(principal),
        after=after,
        request=ask,
        fit=fit,
    )
    filename = f"assay-{project.id.hex[:8]}-{format}-{str(job.record_id)[:8]}.{ask.encoding.suffix}"
    headers = {
        "Assay-Next-Cursor": job.next_cursor,
        "Assay-Export-Id": str(job.record_id),
        "Assay-Held-Back": str(job.held_back),
        "Assay-Revisions": str(job.revised),
        "Link": f'</api/v1/exports/{job.record_id}>; rel="describedby"',
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
        "Vary": "Accept, Accept-Encoding",
    }
    if empty_reason:
        headers["Assay-Empty-Reason"] = empty_reason
    body = job.body()
    generators = [body]
    if ask.encoding == Encoding.jsonl and _accepts_gzip(accept_encoding):
        body = gzipped(body)
        generators.insert(0, body)
        headers["Content-Encoding"] = "gzip"
    return ExportResponse(
        job,
        body,
        generators=generators,
        send_timeout=settings.export_send_timeout_seconds,
        media_type=ask.encoding.media_type,
        headers=headers,
    )


@router.get("/exports/{export_id}", response_model=ManifestRead)
async def get_manifest(export_id: uuid.UUID, principal: ExportPrincipal, session: SessionDep) -> ManifestRead:
    """What an export contained: filters, cursor range, rows, bytes and the body's sha256."""
    record = await service.get_manifest(session, principal, export_id)
    return manifest(record, await service.database_id(session))


@router.get("/projects/{project_id}/exports", response_model=list[ManifestRead])
async def list_manifests(project_id: uuid.UUID, principal: ExportPrincipal, session: SessionDep) -> list[ManifestRead]:
    """The project's last 100 exports, newest first."""
    project = await projects.get_accessible(session, principal, project_id)
    database = await service.database_id(session)
    return [manifest(r, database) for r in await service.list_manifests(session, project.id)]
