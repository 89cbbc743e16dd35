"""Admin pages for gold answers: set one on the item page (typed, or from a judgment) and clear it."""

import math
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.datastructures import FormData

from server.db import SessionDep
from server.errors import Invalid, NotFound
from server.models import Item, Project
from server.projects import service as projects
from server.quality import service
from server.quality.gold import MAX_EXPLANATION
from server.web.deps import AdminPagePrincipal
from server.web.forms import done, read_form

router = APIRouter(prefix="/admin", include_in_schema=False)

NO_ANSWER = "Choose the gold answer: the better response, a tie, or a ranking."
BAD_RANKING = "Write the ranking as response numbers, best first, separated by commas (for example 3, 1, 2)."
BAD_ANSWER = "That is not one of the gold answer options; reload the page and choose again."
BAD_VALUE = "Write the known rating as a number on the item's scale (for example 4 or 3.5)."
LONG_EXPLANATION = f"The explanation is longer than {MAX_EXPLANATION:,} characters; please shorten it."


async def _item_project(session: SessionDep, admin: AdminPagePrincipal, item_id: uuid.UUID) -> Project:
    project_id = await session.scalar(select(Item.project_id).where(Item.id == item_id))
    if project_id is None:
        raise NotFound(f"No item with id {item_id}.")
    return await projects.get_accessible(session, admin, project_id)


def _ranking(value: str) -> list[int]:
    parts = [p.strip().lstrip("#") for p in value.split(",")[:1001]]
    if not parts or not all(p.isascii() and p.isdigit() and len(p) <= 4 for p in parts):
        raise Invalid(BAD_RANKING)
    return [int(p) - 1 for p in parts]  # the page numbers responses from 1


def _rating(value: str) -> float:
    try:
        number = float(value.strip()[:40])
    except ValueError:
        raise Invalid(BAD_VALUE) from None
    if not math.isfinite(number):
        raise Invalid(BAD_VALUE)
    return number


def _typed_answer(form: FormData) -> dict[str, Any]:
    """The gold answer form as the API's body (indices from 0); the gold shape checks the rest."""
    answer = str(form.get("answer") or "")
    explanation = str(form.get("explanation") or "").strip()
    if len(explanation) > MAX_EXPLANATION:
        raise Invalid(LONG_EXPLANATION)
    value: dict[str, Any]
    if answer == "tie":
        value = {"tie": True}
    elif answer == "ranking":
        value = {"ranking": _ranking(str(form.get("ranking") or ""))}
    elif answer in ("check:yes", "check:no"):  # a check subtask
        value = {"answer": answer[6:]}
    elif answer == "value":  # a rating subtask
        value = {"value": _rating(str(form.get("value") or ""))}
    elif answer.startswith("preferred:") and answer[10:].isascii() and answer[10:].isdigit() and len(answer) < 15:
        value = {"preferred": int(answer[10:])}
    elif not answer:
        raise Invalid(NO_ANSWER)
    else:
        raise Invalid(BAD_ANSWER)
    return value | ({"explanation": explanation} if explanation else {})


@router.post("/items/{item_id}/gold")
async def set_gold(request: Request, item_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """Give the item a gold answer: the one typed in the form, or a judgment's verdict ("use as gold")."""
    project = await _item_project(session, admin, item_id)
    form = await read_form(request)
    judgment = str(form.get("judgment") or "")
    if judgment:
        try:
            judgment_id = uuid.UUID(judgment)
        except ValueError:
            raise Invalid("That is not a judgment of this item; reload the page and try again.") from None
        value = await service.gold_of_judgment(session, project, item_id, judgment_id)
        explanation = str(form.get("explanation") or "").strip()
        if explanation:
            if len(explanation) > MAX_EXPLANATION:
                raise Invalid(LONG_EXPLANATION)
            value["explanation"] = explanation
    else:
        value = _typed_answer(form)
    await service.set_gold(session, project, item_id, value)
    return done(request, f"/admin/items/{item_id}", "Gold answer saved: the item is served as gold from now on.")


@router.post("/items/{item_id}/gold/clear")
async def clear_gold(request: Request, item_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """Make the item ordinary work again, at the project's overlap."""
    project = await _item_project(session, admin, item_id)
    await service.clear_gold(session, project, item_id)
    return done(request, f"/admin/items/{item_id}", "Gold answer cleared: the item is ordinary work again.")
