"""The admin page of an assistance experiment: per arm, the differences in words, and what is still needed."""

import math
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.critiques import report
from server.db import SessionDep
from server.errors import Invalid, NotFound
from server.items import service as items
from server.models import Assistance
from server.projects import service as projects
from server.projects.schemas import MAX_GROUP
from server.quality.cache import Computing
from server.quality.experiment import EFFECT, LABELS, PROPORTIONS, format_p
from server.web.deps import AdminPagePrincipal
from server.web.templating import render

router = APIRouter(prefix="/admin", include_in_schema=False)

ORDER = ("catch_rate", "gold_accuracy", "agreement", "median_seconds", "flaws_per_item")
MAX_EFFECT_CHARS = 20


def figure(metric: str, value: float | None, *, signed: bool = False) -> str:
    """A figure as the page writes it: percent (points for a difference), seconds, or flaws."""
    if value is None or not math.isfinite(value):
        return "—"
    sign = "+" if signed and value > 0 else ""
    if metric in PROPORTIONS:
        return f"{sign}{round(100 * value) + 0}{' pts' if signed else '%'}"
    digits = 2 if metric != "median_seconds" else 0 if abs(value) >= 10 else 1
    shown = round(value, digits) + 0.0  # never "-0.00": a tiny negative value rounds to zero
    return f"{sign}{shown:.{digits}f}{' s' if metric == 'median_seconds' else ''}"


def interval(metric: str, ci: list[float] | None) -> str:
    if not ci:
        return "—"
    low, high = (figure(metric, v, signed=True) for v in ci)
    return f"{low} to {high}"


def needed(d: dict[str, Any]) -> str:
    """Judgments still needed for the effect, in words."""
    n = d.get("needed")
    if not n:
        return "—"
    if n["judgments_more"] == 0:
        return f"Enough ({n['judgments_total']:,} needed)"
    return f"{n['judgments_more']:,} more ({n['judgments_total']:,} in all)"


def rows(payload: dict[str, Any]) -> list[dict[str, str]]:
    """One table row per figure: both arms, the difference with its interval and p, judgments needed."""
    out = []
    for metric in ORDER:
        d = payload["differences"][metric]
        out.append(
            {
                "metric": metric,
                "label": LABELS[metric],
                "assisted": figure(metric, payload["arms"]["assisted"][metric]),
                "unassisted": figure(metric, payload["arms"]["unassisted"][metric]),
                "difference": figure(metric, d["estimate"], signed=True),
                "ci": interval(metric, d["ci"]),
                "p": format_p(d["p"]).removeprefix("p = ").removeprefix("p ") if d["p"] is not None else "—",
                "significant": "yes" if d["significant"] else "no" if d["significant"] is False else "—",
                "needed": needed(d),
            }
        )
    return out


def _parse(effect: str, group: str, batch: str) -> tuple[float | None, str | None, uuid.UUID | None, str | None]:
    """The page's query: effect, group and batch, or the one sentence that says what is wrong."""
    try:
        value = report.check_effect(float(effect[:MAX_EFFECT_CHARS]))
    except (ValueError, Invalid):
        return None, None, None, report.EFFECT_REFUSED.format(value=effect[:MAX_EFFECT_CHARS])
    if len(group) > MAX_GROUP:
        return None, None, None, f"A group has at most {MAX_GROUP} characters."
    try:
        batch_id = uuid.UUID(batch) if batch else None
    except ValueError:
        return None, None, None, "Choose a batch from the list."
    return value, group or None, batch_id, None


@router.get("/projects/{project_id}/assistance")
async def assistance(
    request: Request,
    project_id: uuid.UUID,
    admin: AdminPagePrincipal,
    session: SessionDep,
    effect: str = f"{EFFECT:.2f}",
    group: str = "",
    batch: str = "",
) -> Response:
    """The assistance experiment report: per arm, differences with 95% intervals and p, judgments still needed."""
    project = await projects.get_accessible(session, admin, project_id)
    value, chosen_group, batch_id, error = _parse(effect, group, batch)
    context: dict[str, Any] = {
        "project": project,
        "groups": list(await report.groups(session, project)),
        "batches": await items.batch_names(session, project),
        "effect": effect[:MAX_EFFECT_CHARS],
        "group": group[:MAX_GROUP],
        "batch": batch,
        "error": error,
        "figures": None,
        "pending": False,
        "never": project.assistance == Assistance.never,
        "always": project.assistance == Assistance.always,
        "sandwiching": report.SANDWICHING,
    }
    if value is not None:
        try:
            figures = await report.assistance_report(
                session, project, effect=value, group=chosen_group, batch_id=batch_id, page=True
            )
        except Computing:
            context["pending"] = True
        except (Invalid, NotFound) as exc:
            context["error"] = exc.message
        else:
            await session.commit()  # keeps a freshly computed figure
            context |= {"figures": figures, "rows": rows(figures), "order": ORDER}
    return render(request, "admin/critiques/report.html", context, status_code=422 if context["error"] else 200)
