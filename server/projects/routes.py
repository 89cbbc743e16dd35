"""Admin pages for projects: list, create and edit settings, overview with charts, members."""

import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from server.db import SessionDep
from server.errors import Invalid
from server.labeling.pages import SKIP_REASONS
from server.markdown import MAX_INSTRUCTIONS, render_off_loop
from server.models import Project, Role
from server.projects import guards, lifecycle, service
from server.projects.schemas import (
    HandoffRule,
    MemberUpdate,
    ProjectBase,
    ProjectCreate,
    ProjectUpdate,
    QualificationAction,
    QualificationUpdate,
)
from server.quality import reliability
from server.quality.cache import Computing
from server.users import service as users
from server.web import charts
from server.web.deps import AdminPagePrincipal
from server.web.forms import checkbox, done, read_form, text_fields, validate
from server.web.templating import render

router = APIRouter(prefix="/admin", include_in_schema=False)

LABELS = {
    "name": "Name",
    "instructions": "Instructions",
    "scale": "Scale",
    "rationale": "Rationale",
    "overlap": "Overlap",
    "lease_seconds": "Lease time",
    "revision_window_minutes": "Revision window",
    "break_reminder_minutes": "Break reminder",
    "active_learning": "Active learning",
    "gold_rate": "Gold rate",
    "fast_seconds": "Fast answer threshold",
    "gold_feedback": "Gold feedback",
    "qualification_items": "Qualification items",
    "qualification_threshold": "Qualification threshold",
    "suspension_window": "Suspension window",
    "suspension_threshold": "Suspension threshold",
    "assistance": "Assistance",
    "assistance_ratio": "Assisted share",
    "critique_ratings": "Critique ratings",
}
MESSAGES = {
    ("lease_seconds", "greater_than_equal"): "Lease time must be at least {ge} seconds.",
    ("lease_seconds", "less_than_equal"): "Lease time must be at most {le:,} seconds (one day).",
    ("revision_window_minutes", "greater_than_equal"): "Revision window must be 0 (off) or more minutes.",
    ("revision_window_minutes", "less_than_equal"): "Revision window must be at most {le:,} minutes (one day).",
    ("break_reminder_minutes", "greater_than_equal"): "Break reminder must be at least {ge} minutes (0 turns it off).",
    ("break_reminder_minutes", "less_than_equal"): "Break reminder must be at most {le} minutes (eight hours).",
    ("gold_rate", "greater_than_equal"): "Gold rate must be between 0 and 1.",
    ("gold_rate", "less_than_equal"): "Gold rate must be between 0 and 1.",
    ("fast_seconds", "greater_than"): "Fast answer threshold must be more than 0 seconds.",
    ("fast_seconds", "less_than_equal"): "Fast answer threshold must be at most {le:g} seconds (ten minutes).",
    ("qualification_items", "greater_than_equal"): "Qualification items must be 0 (no round) to {le}.",
    ("qualification_items", "less_than_equal"): "Qualification items must be 0 (no round) to {le}.",
    ("qualification_threshold", "greater_than_equal"): "Qualification threshold must be between 0 and 1.",
    ("qualification_threshold", "less_than_equal"): "Qualification threshold must be between 0 and 1.",
    ("suspension_window", "greater_than_equal"): "Suspension window must be 0 (off) to {le} gold judgments.",
    ("suspension_window", "less_than_equal"): "Suspension window must be 0 (off) to {le} gold judgments.",
    ("suspension_threshold", "greater_than_equal"): "Suspension threshold must be between 0 and 1.",
    ("suspension_threshold", "less_than_equal"): "Suspension threshold must be between 0 and 1.",
    ("assistance_ratio", "greater_than_equal"): "Assisted share must be between {ge} and 0.95: "
    "an experiment needs both arms.",
    ("assistance_ratio", "less_than_equal"): "Assisted share must be between 0.05 and {le}: "
    "an experiment needs both arms.",
}
SKIP_LABELS = {**{code.value: label for code, label in SKIP_REASONS.items()}, "none": "No reason given"}
WINDOWS = {24: "24 hours", 48: "48 hours", 168: "7 days"}


def _settings_data(form: FormData) -> dict[str, Any]:
    """The settings form as the schema's fields (unticked checkboxes are not sent: they mean no)."""
    data: dict[str, Any] = text_fields(
        form,
        (
            "name",
            "instructions",
            "scale",
            "rationale",
            "overlap",
            "lease_seconds",
            "revision_window_minutes",
            "break_reminder_minutes",
            "gold_rate",
            "fast_seconds",
            "qualification_items",
            "qualification_threshold",
            "suspension_window",
            "suspension_threshold",
            "assistance",
            "assistance_ratio",
            "critique_ratings",
        ),
    )
    if "name" in data:
        data["name"] = data["name"].strip()
    data["allow_tie"] = checkbox(form, "allow_tie")
    data["allow_both_bad"] = checkbox(form, "allow_both_bad")
    data["is_active"] = form.get("status") != "paused"
    data["active_learning"] = checkbox(form, "active_learning")
    data["gold_feedback"] = checkbox(form, "gold_feedback")
    return data


HANDOFF_LABELS = {
    "min_confidence": "Hand-off threshold",
    "min_judges": "Model judges",
    "spot_check_rate": "Spot-check rate",
}
HANDOFF_FIELDS = tuple(f"handoff_{name}" for name in HANDOFF_LABELS)


def _handoff_values(rule: dict[str, Any] | None) -> dict[str, Any]:
    """The hand-off fields of the form, from the stored rule (or the defaults when there is none)."""
    shown = HandoffRule.model_validate(rule or {}).model_dump()
    return {"handoff_on": rule is not None, **{f"handoff_{k}": v for k, v in shown.items()}}


def _with_handoff(form: FormData, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's hand-off rule into `values` (for the schema), and its fields' errors (keyed as the form's)."""
    raw = text_fields(form, HANDOFF_FIELDS)
    if not checkbox(form, "handoff"):
        return values | {"handoff": None}, {}
    rule, errors = validate(HandoffRule, {k.removeprefix("handoff_"): v for k, v in raw.items()}, HANDOFF_LABELS)
    if rule is None:
        return values, {f"handoff_{k}": v for k, v in errors.items()}
    return values | {"handoff": rule.model_dump()}, {}


def _handoff_form(form: FormData) -> dict[str, Any]:
    """The hand-off fields as typed, to show the form again."""
    return {"handoff_on": checkbox(form, "handoff"), **text_fields(form, HANDOFF_FIELDS)}


def _schema_values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != "handoff_on" and k not in HANDOFF_FIELDS}


async def _preview(text: str) -> dict[str, str]:
    """The instructions as raters will see them, or why there is no preview (rendering is bounded by length)."""
    if len(text) > MAX_INSTRUCTIONS:
        error = f"No preview: the text is longer than {MAX_INSTRUCTIONS:,} characters."
        return {"preview_html": "", "preview_error": error}
    return {"preview_html": await render_off_loop(text), "preview_error": ""}


def _form_page(
    request: Request,
    *,
    project: Project | None,
    values: dict[str, Any],
    errors: dict[str, str],
    preview: dict[str, str],
    status_code: int = 200,
    impact: list[str] | None = None,
    warning: str | None = None,
    confirmation: str = "",
) -> Response:
    context = {
        "project": project,
        "values": values,
        "errors": errors,
        "impact": impact or [],
        "confirmation": confirmation,
        "warning": warning,
        **preview,
    }
    return render(request, "admin/projects/form.html", context, status_code=status_code)


@router.get("/projects")
async def list_projects(request: Request, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """Every project, newest first."""
    projects = await service.list_accessible(session, admin)
    return render(request, "admin/projects/list.html", {"projects": projects})


@router.get("/projects/new")
async def new_project(request: Request, admin: AdminPagePrincipal) -> Response:
    """The form for a new project, with the API's defaults filled in."""
    defaults = {name: field.default for name, field in ProjectBase.model_fields.items()}
    values = defaults | {"name": ""} | _handoff_values(None) | {"handoff_on": False}
    return _form_page(request, project=None, values=values, errors={}, preview=await _preview(""))


@router.post("/projects")
async def create_project(request: Request, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """Create a project; invalid fields come back on the form with what to fix."""
    form = await read_form(request)
    values, rule_errors = _with_handoff(form, _settings_data(form))
    data, errors = validate(ProjectCreate, _schema_values(values), LABELS, MESSAGES)
    if data is not None and (problem := await service.qualification_problem(session, None, data.qualification_items)):
        data, errors = None, {"qualification_items": problem}
    if rule_errors:
        data, errors = None, errors | rule_errors
    values |= _handoff_form(form)
    if data is None:
        preview = await _preview(str(values.get("instructions") or ""))
        return _form_page(request, project=None, values=values, errors=errors, preview=preview, status_code=422)
    project = await service.create(session, data, actor=admin.user)
    return done(request, f"/admin/projects/{project.id}", f"Project “{project.name}” created.")


@router.get("/projects/{project_id}/settings")
async def edit_project(
    request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """The settings form of a project."""
    project = await service.get_accessible(session, admin, project_id)
    values = {k: getattr(project, k) for k in (*LABELS, "allow_tie", "allow_both_bad", "is_active")}
    values |= _handoff_values(project.handoff)
    preview = {"preview_html": project.instructions_html, "preview_error": ""}
    warning = guards.overlap_warning(project.overlap, await service.rater_count(session, project))
    return _form_page(request, project=project, values=values, errors={}, preview=preview, warning=warning)


@router.post("/projects/{project_id}/settings")
async def update_project(
    request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Save settings (a new overlap applies to open items at once); an overlap or scale change that
    touches work already done is shown with its numbers first, and saved when confirmed."""
    project = await service.get_accessible(session, admin, project_id)
    form = await read_form(request)
    values, rule_errors = _with_handoff(form, _settings_data(form))
    data, errors = validate(ProjectUpdate, _schema_values(values), LABELS, MESSAGES)
    if (
        data is not None
        and (data.qualification_items or 0) > project.qualification_items
        and (problem := await service.qualification_problem(session, project, data.qualification_items))
    ):
        data, errors = None, {"qualification_items": problem}
    if rule_errors:
        data, errors = None, errors | rule_errors
    values |= _handoff_form(form)
    if data is None:
        preview = await _preview(str(values.get("instructions") or ""))
        return _form_page(request, project=project, values=values, errors=errors, preview=preview, status_code=422)
    impact = guards.impact_messages(project, data, **asdict(await service.settings_impact(session, project, data)))
    if impact and form.get("confirmed") != _confirmation(data):
        preview = await _preview(str(values.get("instructions") or ""))
        warning = guards.overlap_warning(data.overlap or project.overlap, await service.rater_count(session, project))
        return _form_page(
            request, project=project, values=values, errors={}, preview=preview, impact=impact, warning=warning,
            confirmation=_confirmation(data),
        )  # fmt: skip
    await service.update_project(session, project, data, actor=admin.user)
    return done(request, f"/admin/projects/{project.id}", "Settings saved.")


@router.post("/projects/{project_id}/archive")
async def archive_project(
    request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Archive the project (hidden from raters, nothing served, live leases end; data kept) or unarchive it."""
    project = await service.get_accessible(session, admin, project_id)
    choice = (await read_form(request)).get("archived")
    if choice not in ("true", "false"):
        raise Invalid("Send archived=true to archive the project or archived=false to unarchive it.")
    archived = choice == "true"
    await service.update_project(session, project, ProjectUpdate(archived=archived), actor=admin.user)
    message = (
        f"Project “{project.name}” archived: raters no longer see it and its live leases ended; all its data is kept "
        "for export."
        if archived
        else f"Project “{project.name}” unarchived: raters see it again."
    )
    return done(request, f"/admin/projects/{project.id}/settings", message)


async def _confirm_page(
    request: Request, session: SessionDep, project: Project, *, error: str | None = None
) -> Response:
    impact = await lifecycle.impact(session, project_id=project.id)
    context = {
        "project": project,
        "kind": "project",
        "name": project.name,
        "sentence": lifecycle.confirm_sentence("project", project.name, impact),
        "live_leases": impact.live_leases,
        "action": f"/admin/projects/{project.id}/delete",
        "back": f"/admin/projects/{project.id}/settings",
        "error": error,
    }
    return render(request, "admin/confirm_delete.html", context, status_code=422 if error else 200)


@router.get("/projects/{project_id}/delete")
async def confirm_delete(
    request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """What deleting the project removes, and the field to type its name in."""
    return await _confirm_page(request, session, await service.get_accessible(session, admin, project_id))


@router.post("/projects/{project_id}/delete")
async def delete_project(
    request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Delete the project's data once its name is typed; otherwise the confirmation again."""
    project = await service.get_accessible(session, admin, project_id)
    confirm = (await read_form(request)).get("confirm")
    typed = confirm if isinstance(confirm, str) else None
    if not lifecycle.confirmed(project.name, typed):
        error = f"Type the project's name, “{project.name}”, to delete it; nothing was deleted."
        return await _confirm_page(request, session, project, error=error)
    removed = await lifecycle.delete_project(session, project, confirm=typed, actor=admin.user)
    return done(request, "/admin/projects", lifecycle.deleted_result("project", project.name, removed).message)


def _confirmation(data: ProjectUpdate) -> str:
    """What the confirm button repeats: the overlap and scale it was shown the numbers for."""
    return f"{data.overlap}:{data.scale}"


@router.post("/projects/preview")
async def preview_instructions(request: Request, admin: AdminPagePrincipal) -> Response:
    """Instructions Markdown as raters will see it (htmx swaps the `preview` block; a full page otherwise)."""
    form = await read_form(request)
    return render(request, "admin/projects/preview.html", await _preview(str(form.get("instructions") or "")))


@router.get("/projects/{project_id}")
async def overview(
    request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep, hours: int = 48
) -> Response:
    """Progress, judgments per hour, and per-rater counts and median time over a window."""
    if hours not in WINDOWS:
        raise Invalid("Choose a window of 24, 48 or 168 hours.")
    project = await service.get_accessible(session, admin, project_id)
    now = datetime.now(UTC)
    per_hour = await service.throughput(session, project, hours=hours, now=now)
    raters = await service.rater_stats(session, project, since=per_hour[0].hour)
    rater_members = await service.rater_count(session, project)
    context = {
        "project": project,
        "rater_members": rater_members,
        "overlap_warning": guards.overlap_warning(project.overlap, rater_members),
        "progress": await service.progress(session, project),
        "skip_labels": SKIP_LABELS,
        "hours": hours,
        "windows": WINDOWS,
        "per_hour": per_hour,
        "raters": raters,
        "throughput_chart": charts.throughput_chart(per_hour),
        "count_chart": charts.rater_count_chart(raters),
        "time_chart": charts.rater_time_chart(raters),
        "format_duration": charts.format_duration,
        "since": now - timedelta(hours=hours),
        "agreement": await _agreement(session, project),
    }
    return render(request, "admin/projects/overview.html", context)


async def _agreement(session: AsyncSession, project: Project) -> dict[str, Any]:
    """The overview's agreement card, or a placeholder while it is computed for the first time."""
    try:
        return await reliability.project_agreement(session, project)
    except Computing:
        return {"computing": True}


async def _members_page(
    request: Request, session: SessionDep, project: Project, *, email: str = "", error: str | None = None
) -> Response:
    members = await service.list_members(session, project)
    taken = {m.user_id for m in members}
    # Admins see every project already; raters label it, trainers export it.
    addable = [u for u in await users.list_users(session) if u.id not in taken and u.is_active and u.role != Role.admin]
    context = {"project": project, "members": members, "addable": addable, "email": email, "error": error}
    return render(request, "admin/projects/members.html", context, status_code=422 if error else 200)


@router.get("/projects/{project_id}/members")
async def members(request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """Who the project is shared with, and a form to add a rater."""
    return await _members_page(request, session, await service.get_accessible(session, admin, project_id))


@router.post("/projects/{project_id}/members")
async def add_member(
    request: Request, project_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Share the project with an account, found by email."""
    project = await service.get_accessible(session, admin, project_id)
    email = str((await read_form(request)).get("email") or "").strip()
    user = await users.get_by_email(session, email) if email else None
    if user is None:
        error = f"No account has the email {email}; create it under Users first." if email else "Enter an email."
        return await _members_page(request, session, project, email=email, error=error)
    await service.add_member(session, project, user.id, actor=admin.user)
    return done(request, f"/admin/projects/{project.id}/members", f"{user.email} can now see “{project.name}”.")


@router.post("/projects/{project_id}/members/{user_id}/remove")
async def remove_member(
    request: Request, project_id: uuid.UUID, user_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Stop sharing the project with an account; its past judgments stay."""
    project = await service.get_accessible(session, admin, project_id)
    await service.remove_member(session, project, user_id, actor=admin.user)
    return done(request, f"/admin/projects/{project.id}/members", "Member removed.")


@router.post("/projects/{project_id}/members/{user_id}/reinstate")
async def reinstate_member(
    request: Request, project_id: uuid.UUID, user_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Lift a member's suspension in this project (an admin's or the gold rule's)."""
    project = await service.get_accessible(session, admin, project_id)
    await service.set_suspension(session, project, user_id, MemberUpdate(suspended=False), actor=admin.user)
    return done(request, f"/admin/projects/{project.id}/members", "Reinstated: they get items again.")


@router.post("/projects/{project_id}/members/{user_id}/group")
async def member_group(
    request: Request, project_id: uuid.UUID, user_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Set a member's rater group (such as expert), or clear it with an empty field."""
    project = await service.get_accessible(session, admin, project_id)
    group = str((await read_form(request)).get("group") or "").strip()
    data, errors = validate(MemberUpdate, {"group": group or None}, {"group": "Group"})
    if data is None:
        raise Invalid(errors["group"])
    await service.set_group(session, project, user_id, data.group, actor=admin.user)
    message = f"Group set to {data.group}." if data.group else "Group cleared."
    return done(request, f"/admin/projects/{project.id}/members", message)


QUALIFICATION_DONE = {
    QualificationAction.admit: "Admitted: they get items without (passing) the qualification round.",
    QualificationAction.retry: "They get a new qualification round, of gold items they have not seen.",
}


@router.post("/projects/{project_id}/members/{user_id}/qualification")
async def member_qualification(
    request: Request, project_id: uuid.UUID, user_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Admit a member who did not pass the qualification round, or let them try again."""
    project = await service.get_accessible(session, admin, project_id)
    action = str((await read_form(request)).get("action") or "")
    if action not in QualificationAction.__members__:
        raise Invalid("Choose admit or try again.")
    data = QualificationUpdate(action=QualificationAction(action))
    await service.set_qualification(session, project, user_id, data, actor=admin.user)
    return done(request, f"/admin/projects/{project.id}/members", QUALIFICATION_DONE[data.action])
