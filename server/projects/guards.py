"""Warnings about settings that cannot work as set, and what saving a change would do (pure)."""

from server.models import Project
from server.projects.schemas import ProjectUpdate


def overlap_warning(overlap: int, raters: int) -> str | None:
    """Each item needs `overlap` distinct raters: with fewer raters, items never complete."""
    if overlap <= raters:
        return None
    have = "no raters" if raters == 0 else "1 rater" if raters == 1 else f"{raters} raters"
    need = "1 rater" if overlap == 1 else f"{overlap} raters"
    return (
        f"Overlap {overlap} needs at least {need}; this project has {have}. "
        "Items cannot complete until enough raters are members (Members tab), or lower the overlap."
    )


def _items(n: int) -> str:
    return "1 item" if n == 1 else f"{n:,} items"


def impact_messages(project: Project, data: ProjectUpdate, *, reopen: int, complete: int, judgments: int) -> list[str]:
    """What saving would change in work already done, in words (empty: nothing done is touched)."""
    messages = []
    if data.overlap is not None and data.overlap != project.overlap and (reopen or complete):
        parts = []
        if reopen:
            parts.append(f"{_items(reopen)} now complete will reopen (they have fewer than {data.overlap} judgments)")
        if complete:
            parts.append(f"{_items(complete)} still open will complete with the judgments they have")
        messages.append(f"Overlap {project.overlap} → {data.overlap}: {'; '.join(parts)}.")
    if data.scale is not None and data.scale != project.scale and judgments:
        n = f"{judgments:,} judgment" + ("" if judgments == 1 else "s")
        messages.append(
            f"Scale {project.scale} → {data.scale}: {n} already made on the {project.scale} scale keep their "
            "strength as given; exports of the project then mix both scales."
        )
    return messages
