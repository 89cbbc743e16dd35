"""Admin pages for planted flaws: plant one in a response on the item page, or remove one.

Admins only (AdminPagePrincipal), with the page CSRF check every admin form has (read_form).
"""

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.critiques import planted
from server.db import SessionDep
from server.errors import Invalid, NotFound
from server.models import Item
from server.projects import service as projects
from server.web.deps import AdminPagePrincipal
from server.web.forms import done, read_form

router = APIRouter(prefix="/admin", include_in_schema=False)

BAD_RESPONSE = "Choose the response the flaw is in."
BAD_NUMBER = "{what} must be a whole number of characters (Unicode code points) from the start of the response."
BAD_MESSAGE = "The message must be the number of a message of the response (1 for the first)."


async def _item(session: SessionDep, admin: AdminPagePrincipal, item_id: uuid.UUID) -> Item:
    item = await session.get(Item, item_id)
    if item is None:
        raise NotFound(f"No item with id {item_id}.")
    await projects.get_accessible(session, admin, item.project_id)
    return item


def _number(value: str, what: str) -> int:
    value = value.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 9):
        raise Invalid(BAD_NUMBER.format(what=what))
    return int(value)


@router.post("/items/{item_id}/planted")
async def add_planted(request: Request, item_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """Plant a flaw in one response: a span (start and end in code points, or the selected text)
    and what is wrong there. Raters never see it."""
    item = await _item(session, admin, item_id)
    form = await read_form(request)
    try:
        candidate_id = uuid.UUID(str(form.get("candidate") or ""))
    except ValueError:
        raise Invalid(BAD_RESPONSE) from None
    start = _number(str(form.get("start") or ""), "The start")
    end = _number(str(form.get("end") or ""), "The end")
    message_field = str(form.get("message") or "").strip()
    message = None
    if message_field:
        number = _number(message_field, "The message")
        if number < 1:
            raise Invalid(BAD_MESSAGE)
        message = number - 1
    await planted.add(
        session,
        item=item,
        candidate_id=candidate_id,
        span=[start, end],
        message=message,
        description=str(form.get("description") or ""),
        actor=admin.user,
    )
    return done(request, f"/admin/items/{item_id}#planted", "Flaw planted: raters will not see it.")


@router.post("/items/{item_id}/planted/{planted_id}/remove")
async def remove_planted(
    request: Request, item_id: uuid.UUID, planted_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Remove one planted flaw of the item."""
    item = await _item(session, admin, item_id)
    await read_form(request)
    await planted.remove(session, item=item, planted_id=planted_id, actor=admin.user)
    return done(request, f"/admin/items/{item_id}#planted", "Planted flaw removed.")
