"""Task trees over JSON: add subtasks to an item (a model can decompose tasks)."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import Field

from server.auth.deps import scoped
from server.auth.service import Principal
from server.batches.formats.subtasks import MAX_SUBTASKS
from server.db import SessionDep
from server.errors import error_responses
from server.items import subtasks
from server.models import Item, Scope
from server.projects import service as projects
from server.schemas import Schema

router = APIRouter(tags=["items"])
ItemsWriter = Annotated[Principal, Depends(scoped(Scope.items_write))]


class SubtasksCreate(Schema):
    subtasks: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_SUBTASKS,
        description='Subtasks as in native records: [{"kind": "comparison"|"check"|"rating"|"answer", "question", '
        '"candidate"?, "span"?, "scale"?, "responses"?, "overlap"?, "group"?, "subtasks"?}].',
    )


class SubtaskRead(Schema):
    id: uuid.UUID
    external_id: str
    parent_id: uuid.UUID | None
    kind: str
    question: str | None
    scale: list[float] | None
    candidate_id: uuid.UUID | None
    span: list[int] | None
    group: str | None
    wanted: int


def read(item: Item) -> SubtaskRead:
    return SubtaskRead(
        id=item.id,
        external_id=item.external_id,
        parent_id=item.parent_id,
        kind=item.kind,
        question=item.question,
        scale=[item.scale_min, item.scale_max] if item.scale_min is not None and item.scale_max is not None else None,
        candidate_id=item.subtask_candidate_id,
        span=[item.span_start, item.span_end] if item.span_start is not None and item.span_end is not None else None,
        group=item.pool,
        wanted=item.wanted,
    )


@router.post(
    "/items/{item_id}/subtasks",
    response_model=list[SubtaskRead],
    status_code=201,
    responses=error_responses(409),
)
async def add_subtasks(item_id: uuid.UUID, body: SubtasksCreate, principal: ItemsWriter, session: SessionDep) -> object:
    """Add subtasks under an item (all or none; ids derived from the item's: `t1/2`, `t1/2/0`). Under the
    project's `subtasks_gate = required` the item is served only once they have their judgments."""
    item, _ = await projects.get_accessible_item(session, principal, item_id)
    added = await subtasks.add(session, item=item, data=body.subtasks)
    return [read(i) for i in added]
