"""Admin pages of quality control: the sortable rater quality table with the project's agreement."""

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.db import SessionDep
from server.errors import Invalid
from server.handoff import service as handoff
from server.handoff.rules import Rule
from server.projects import service as projects
from server.quality import reliability
from server.quality.cache import Computing
from server.web import charts
from server.web.deps import AdminPagePrincipal
from server.web.templating import render

router = APIRouter(prefix="/admin", include_in_schema=False)

# Sortable columns: key -> (heading, the rater figure it sorts by)
COLUMNS: dict[str, tuple[str, str]] = {
    "email": ("Rater", "email"),
    "judgments": ("Judgments", "judgments"),
    "agreement": ("Agreement", "agreement"),
    "gold": ("Gold", "gold_accuracy"),
    "left": ("Left", "position_bias"),
    "seconds": ("Median time", "median_seconds"),
    "fast": ("Fast", "fast_share"),
    "ties": ("Ties", "tie_rate"),
    "both_bad": ("Both bad", "both_bad_rate"),
    "skips": ("Skips", "skip_rate"),
    "revisions": ("Revised", "revision_rate"),
    "flags": ("Flags", "flags"),
}
MAX_SORT = 20  # characters: the longest key with a leading "-" fits


def sort_raters(raters: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    """Raters by a column, `-key` descending; raters without the figure go last either way."""
    key = sort.removeprefix("-")
    if len(sort) > MAX_SORT or key not in COLUMNS:
        raise Invalid(f"sort must be one of {', '.join(COLUMNS)}, with a leading - for descending order.")
    field = COLUMNS[key][1]

    def value(r: dict[str, Any]) -> Any:
        v = r[field]
        return len(v) if field == "flags" else v.lower() if field == "email" else v

    present = [r for r in raters if r[field] is not None]
    missing = [r for r in raters if r[field] is None]
    return sorted(present, key=value, reverse=sort.startswith("-")) + missing


def next_sort(key: str, current: str) -> str:
    """The sort a column heading links to: the current column flips, another starts in its natural order."""
    if current.removeprefix("-") == key:
        return key if current.startswith("-") else f"-{key}"
    return key if key == "email" else f"-{key}"


@router.get("/projects/{project_id}/quality")
async def quality(
    request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep, sort: str = "-flags"
) -> Response:
    """The project's agreement, and every member's reliability, biases and flags in a sortable table."""
    project = await projects.get_accessible(session, admin, project_id)
    try:
        figures = await reliability.project_quality(session, project, page=True)
    except Computing:
        return render(request, "admin/quality/table.html", {"project": project, "computing": True})
    raters = sort_raters(figures["raters"], sort)
    context = {
        "project": project,
        "agreement": figures["agreement"],
        "raters": raters,
        "sort": sort,
        "columns": {key: (label, next_sort(key, sort)) for key, (label, _) in COLUMNS.items()},
    }
    if project.handoff is not None:  # the hand-off's report and its reliability diagram
        try:
            report = await handoff.handoff_report(session, project, page=True)
            context |= {
                "handoff": report,
                "handoff_rule": Rule.of(project.handoff),
                "calibration": charts.reliability_chart(report["bins"]),
            }
        except Computing:
            context["handoff_computing"] = True
    return render(request, "admin/quality/table.html", context)
