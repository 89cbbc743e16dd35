"""Jinja2 for the HTML pages: one `render()` that picks the block to send, flash messages.

Autoescaping is on for every template: model outputs are always inert text.
"""

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request
from fastapi.responses import Response
from jinja2_fragments.fastapi import Jinja2Blocks

from server import __version__
from server.config import settings

TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "templates"
FLASH_COOKIE = "assay_flash"
FLASH_KINDS = frozenset({"info", "success", "error"})


def _flash_signature(value: str) -> str:
    return hmac.new(settings.secret_key.encode(), b"flash:" + value.encode(), hashlib.sha256).hexdigest()[:32]


def read_flash(request: Request) -> tuple[str, str] | None:
    """The (kind, message) left for this page by the previous one, if it is ours (signed)."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    value, _, signature = unquote(raw).rpartition("|")
    kind, _, message = value.partition(":")
    if not hmac.compare_digest(signature, _flash_signature(value)) or kind not in FLASH_KINDS:
        return None
    return kind, message


def flash(response: Response, message: str, *, kind: str = "info") -> None:
    """Show `message` on the next page rendered for this browser (after a redirect)."""
    value = f"{kind}:{message}"
    response.set_cookie(
        FLASH_COOKIE,
        quote(f"{value}|{_flash_signature(value)}"),
        max_age=60,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def _page_context(request: Request) -> dict[str, Any]:
    """What every page sees: `user` (a `Viewer`, set by the page dependencies), its CSRF token, a flash."""
    viewer = getattr(request.state, "viewer", None)
    return {"user": viewer, "csrf_token": viewer.csrf_token if viewer else "", "flash": read_flash(request)}


templates = Jinja2Blocks(directory=str(TEMPLATES_DIR), context_processors=[_page_context])
templates.env.globals["version"] = __version__
# Epoch seconds (the quality figures' JSON snapshots) as an aware datetime, for the `when` macro.
templates.env.globals["epoch"] = lambda seconds: datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"


def _target_block(request: Request, name: str) -> str | None:
    """The block an htmx request targets (`HX-Target` = the block's name), if the template has one."""
    target = request.headers.get("HX-Target")
    if not target or not is_htmx(request):
        return None
    template = templates.get_template(name)
    return target if target in template.blocks else None


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    block: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Render a page, or only the block an htmx request targets (or `block`); the same URL serves both."""
    chosen = block or _target_block(request, name)
    response = templates.TemplateResponse(
        request, name, dict(context or {}), status_code=status_code, headers=headers, block_name=chosen
    )
    if chosen is None and FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE)  # shown on this full page: do not show it again
    return response
