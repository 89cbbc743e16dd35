"""Projects, their settings and who may see them."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server import audit
from server.auth.service import Principal
from server.errors import Conflict, Invalid, NotFound
from server.items import subtasks
from server.labeling import handoff, queue
from server.labeling import service as labeling
from server.logs import get_logger
from server.markdown import render_off_loop
from server.models import (
    Assignment,
    AssignmentStatus,
    Item,
    Judgment,
    Project,
    ProjectMember,
    Role,
    SkipReason,
    SurplusReason,
    User,
)
from server.models.xid import CURRENT_XID
from server.projects import lifecycle
from server.projects.schemas import (
    HourlyCount,
    MemberRead,
    MemberUpdate,
    ProjectCreate,
    ProjectProgress,
    ProjectUpdate,
    QualificationAction,
    QualificationUpdate,
    RaterStats,
)
from server.quality.rules import ADMIN_NOT_ENOUGH_GOLD
from server.rewards import service as rewards

log = get_logger("projects")


def accessible_project_ids(principal: Principal):  # type: ignore[no-untyped-def]
    """The one rule for who sees which project: admins all, everyone else their memberships; a deleted
    project nobody (its row stays only for export manifests and the audit log)."""
    if principal.is_admin:
        return select(Project.id).where(Project.deleted_at.is_(None))
    return (
        select(ProjectMember.project_id)
        .join(Project, Project.id == ProjectMember.project_id)
        .where(ProjectMember.user_id == principal.user.id, Project.deleted_at.is_(None))
    )


async def get_accessible(session: AsyncSession, principal: Principal, project_id: uuid.UUID) -> Project:
    """The project if the caller may see it; 404 otherwise, so unshared projects stay invisible."""
    project = await session.scalar(
        select(Project).where(Project.id == project_id, Project.id.in_(accessible_project_ids(principal)))
    )
    if project is None:
        deleted = await session.scalar(select(Project.deleted_at).where(Project.id == project_id))
        if deleted is not None and (principal.is_admin or await _was_member(session, principal, project_id)):
            raise NotFound(
                f"Project {project_id} was deleted on {deleted:%Y-%m-%d %H:%M} UTC; its items and judgments are gone. "
                "Export manifests already delivered are kept."
            )
        raise NotFound(f"No project with id {project_id} is shared with you.")
    return project


async def get_accessible_item(session: AsyncSession, principal: Principal, item_id: uuid.UUID) -> tuple[Item, Project]:
    """The item and its project if the caller may see the project; one 404 for "no such item" and "not
    yours", so an item id never tells a caller whose project it belongs to, or that it was deleted."""
    item = await session.get(Item, item_id)
    try:
        if item is None:
            raise NotFound("")
        return item, await get_accessible(session, principal, item.project_id)
    except NotFound:
        raise NotFound(f"No item {item_id} is shared with you.") from None


async def _was_member(session: AsyncSession, principal: Principal, project_id: uuid.UUID) -> bool:
    member = select(ProjectMember).where(
        ProjectMember.project_id == project_id, ProjectMember.user_id == principal.user.id
    )
    return bool(await session.scalar(select(member.exists())))


async def list_accessible(session: AsyncSession, principal: Principal) -> list[Project]:
    """Projects the caller may see, newest first."""
    query = select(Project).where(Project.id.in_(accessible_project_ids(principal)))
    return list(await session.scalars(query.order_by(Project.created_at.desc())))


async def memberships(session: AsyncSession, user_id: uuid.UUID) -> list[Project]:
    """The projects an account is a member of (what its tokens can export, unless it is an admin)."""
    query = select(Project).join(ProjectMember, ProjectMember.project_id == Project.id)
    query = query.where(ProjectMember.user_id == user_id, Project.deleted_at.is_(None))
    return list(await session.scalars(query.order_by(Project.name)))


@dataclass(frozen=True, slots=True)
class SettingsImpact:
    """What saving new settings would do to work already done (shown before it is saved)."""

    reopen: int = 0  # complete items a higher overlap reopens (they have fewer judgments)
    complete: int = 0  # open items a lower overlap completes with what they have
    judgments: int = 0  # stored judgments made on the old scale (for a scale change)


async def settings_impact(session: AsyncSession, project: Project, data: ProjectUpdate) -> SettingsImpact:
    """The items and judgments an overlap or scale change touches; zeros when neither changes."""
    reopen = complete = judgments = 0
    if data.overlap is not None and data.overlap != project.overlap:
        counts = (
            await session.execute(
                select(
                    func.count().filter(Item.completed_at.is_not(None), Item.judged < data.overlap),
                    func.count().filter(Item.completed_at.is_(None), Item.judged >= data.overlap),
                ).where(Item.project_id == project.id, Item.parent_id.is_(None))
            )
        ).one()
        reopen, complete = counts[0], counts[1]
    if data.scale is not None and data.scale != project.scale:
        judgments = await session.scalar(select(func.count()).where(Judgment.project_id == project.id)) or 0
    return SettingsImpact(reopen=reopen, complete=complete, judgments=judgments)


async def rater_count(session: AsyncSession, project: Project) -> int:
    """Rater accounts among the members, active and not suspended in the project (admins can label too,
    but a project's overlap is planned for its raters)."""
    query = (
        select(func.count())
        .select_from(ProjectMember)
        .join(User, User.id == ProjectMember.user_id)
        .where(
            ProjectMember.project_id == project.id,
            ProjectMember.suspended_at.is_(None),
            User.role == Role.rater,
            User.is_active,
        )
    )
    return await session.scalar(query) or 0


async def non_memberships(session: AsyncSession, user_id: uuid.UUID) -> list[Project]:
    """The projects an account is not a member of (for admins' pages: where to add it)."""
    member = select(ProjectMember.project_id).where(ProjectMember.user_id == user_id)
    query = select(Project).where(Project.id.not_in(member), Project.deleted_at.is_(None))
    return list(await session.scalars(query.order_by(Project.name)))


async def qualification_problem(session: AsyncSession, project: Project | None, items: int | None) -> str | None:
    """Why a qualification round of `items` gold items cannot run in this project (too few gold items)."""
    if not items:
        return None
    have = 0
    if project is not None:
        have = (
            await session.scalar(select(func.count()).where(Item.project_id == project.id, Item.gold_seq.is_not(None)))
            or 0
        )
    return ADMIN_NOT_ENOUGH_GOLD.format(wanted=items, have=have) if have < items else None


async def create(session: AsyncSession, data: ProjectCreate, *, actor: User) -> Project:
    """Create a project; its creator becomes a member so they can try the rater loop (a qualification
    round needs gold items, so a new project starts without one)."""
    if problem := await qualification_problem(session, None, data.qualification_items):
        raise Conflict(problem)
    project = Project(
        **data.model_dump(), instructions_html=await render_off_loop(data.instructions), created_by_id=actor.id
    )
    session.add(project)
    await session.flush()
    session.add(ProjectMember(project_id=project.id, user_id=actor.id))
    audit.record(
        session,
        actor=actor,
        action="project.create",
        target_type="project",
        target_id=project.id,
        project_id=project.id,
        data={"name": project.name},
    )
    await session.flush()
    await session.refresh(project)
    return project


async def update_project(session: AsyncSession, project: Project, data: ProjectUpdate, *, actor: User) -> Project:
    """Change settings; a new overlap re-opens or completes items, active learning (un)prioritises them, at once."""
    # Every setting is required, so null leaves it as it is (it cannot be stored).
    changes = {key: value for key, value in data.model_dump(exclude_unset=True).items() if value is not None}
    if "handoff" in data.model_fields_set:  # null turns the hand-off off (the one setting that can be null)
        changes["handoff"] = changes.get("handoff")
        if changes["handoff"] == project.handoff:
            del changes["handoff"]
    archived = changes.pop("archived", None)
    if archived is not None:
        await lifecycle.set_project_archived(session, project, archived, actor=actor)
        if not changes:
            return project
    longer = changes.get("qualification_items", 0) > project.qualification_items  # turned on, or a longer round
    if longer and (problem := await qualification_problem(session, project, changes["qualification_items"])):
        raise Conflict(problem)
    reorders = changes.keys() & {"overlap", "active_learning", "is_active", "subtasks_gate", "handoff"}
    raised = changes.get("overlap", project.overlap) > project.overlap
    if reorders:
        await queue.lock_for_reorder(session, project.id)  # the project row first: the lock order
    # A new gate opens or closes parents anywhere; a new hand-off rule holds or releases items anywhere.
    opens = changes.get("subtasks_gate", project.subtasks_gate) != project.subtasks_gate or "handoff" in changes
    for key, value in changes.items():
        setattr(project, key, value)
    if "instructions" in changes:
        project.instructions_html = await render_off_loop(project.instructions)
    lowest = await _apply_overlap(session, project.id, project.overlap) if "overlap" in changes else None
    if "active_learning" in changes:
        await rewards.apply_active_learning(session, project)
    if "handoff" in changes:
        await handoff.apply_rule(session, project)
    if "subtasks_gate" in changes:
        await subtasks.apply_gate(session, project, project.subtasks_gate)
    if reorders and "active_learning" not in changes and not opens:
        # What moved ahead: a lowered overlap or a paused/restarted project, nothing; a raised one,
        # the items it reopened: open now with at least `lowest` (the smallest overlap it raised)
        # judgments and leases. Active learning, a new gate or a new hand-off rule can move items
        # anywhere: raters walk from the start.
        if raised and lowest is not None:
            await queue.rewind_to(session, project.id, "i.judged + i.leased >= :reopened", {"reopened": lowest})
        else:
            await queue.rewind_to(session, project.id, "false", {})
    await session.flush()
    await session.refresh(project)
    audit.record(
        session,
        actor=actor,
        action="project.update",
        target_type="project",
        target_id=project.id,
        project_id=project.id,
        data={k: str(v) for k, v in changes.items() if k != "instructions"},
    )
    return project


# What a new overlap means for items in flight. Lowering it never un-counts a stored judgment: an
# item that already has at least the new overlap completes with what it has (and its aggregate
# gets a new revision, so completed-item exports deliver it); raising it reopens completed items
# that now have too few. Live leases on an item that completes this way keep their lease, and a
# verdict sent on them is stored as surplus ("filled"). Items are locked in id order, by a statement
# of their own: a statement that waits for rows does not write them (docs/ARCHITECTURE.md "Locks").
_OVERLAP_TARGET = """
        SELECT id, wanted AS before FROM items WHERE project_id = :project_id AND parent_id IS NULL
          AND gold_seq IS NULL AND wanted <> :overlap AND label_source IS NULL
        ORDER BY id FOR NO KEY UPDATE"""
_LOCK_OVERLAP_TARGET = text(_OVERLAP_TARGET)
_APPLY_OVERLAP = text(
    f"""
    WITH target AS ({_OVERLAP_TARGET}
    ), changed AS (
    UPDATE items i SET
        wanted = :overlap,
        completed_at = CASE WHEN i.judged >= :overlap THEN coalesce(i.completed_at, now()) END,
        aggregate_revision = i.aggregate_revision
            + CASE WHEN i.judged >= :overlap AND i.completed_at IS NULL THEN 1 ELSE 0 END,
        aggregate_xid = CASE WHEN i.judged >= :overlap AND i.completed_at IS NULL THEN {CURRENT_XID}
                             ELSE i.aggregate_xid END
    FROM target WHERE i.id = target.id
    RETURNING target.before
    )
    SELECT min(before) FILTER (WHERE before < :overlap) FROM changed
    """
)


async def _apply_overlap(session: AsyncSession, project_id: uuid.UUID, overlap: int) -> int | None:
    """Set every item's overlap; returns the smallest overlap it raised (None: none was raised)."""
    params = {"project_id": project_id, "overlap": overlap}
    await session.execute(_LOCK_OVERLAP_TARGET, params)
    lowest = await session.scalar(_APPLY_OVERLAP, params)
    return None if lowest is None else int(lowest)


async def add_member(session: AsyncSession, project: Project, user_id: uuid.UUID, *, actor: User) -> None:
    """Share a project with a user; adding twice is harmless."""
    user = await session.get(User, user_id)
    if user is None:
        raise Invalid(f"No user with id {user_id}; create the account first.")
    await session.execute(insert(ProjectMember).values(project_id=project.id, user_id=user.id).on_conflict_do_nothing())
    audit.record(
        session,
        actor=actor,
        action="member.add",
        target_type="user",
        target_id=user.id,
        project_id=project.id,
    )


async def remove_member(session: AsyncSession, project: Project, user_id: uuid.UUID, *, actor: User) -> None:
    """Stop sharing a project with a user; their leases end now, their past judgments stay."""
    result = await session.execute(
        delete(ProjectMember).where(ProjectMember.project_id == project.id, ProjectMember.user_id == user_id)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"User {user_id} is not a member of this project.")
    await labeling.end_leases(session, project_id=project.id, rater_id=user_id, reason=SurplusReason.removed)
    audit.record(
        session,
        actor=actor,
        action="member.remove",
        target_type="user",
        target_id=user_id,
        project_id=project.id,
    )


async def _member_for_update(session: AsyncSession, project: Project, user_id: uuid.UUID) -> ProjectMember:
    member = await session.scalar(
        select(ProjectMember)
        .where(ProjectMember.project_id == project.id, ProjectMember.user_id == user_id)
        .with_for_update()
    )
    if member is None:
        raise NotFound(f"User {user_id} is not a member of this project.")
    return member


async def update_member(
    session: AsyncSession, project: Project, user_id: uuid.UUID, data: MemberUpdate, *, actor: User | None
) -> None:
    """Suspend or reinstate a member, and/or set or clear their rater group (`group` sent as null clears it)."""
    given = data.model_fields_set
    if "suspended" not in given and "group" not in given:
        raise Invalid("Send suspended, group, or both: there is nothing to change.")
    if data.suspended is not None:
        await set_suspension(session, project, user_id, data, actor=actor)
    elif "suspended" in given:
        raise Invalid("suspended must be true or false; leave it out to change only the group.")
    if "group" in given:
        await set_group(session, project, user_id, data.group, actor=actor)


async def set_group(
    session: AsyncSession, project: Project, user_id: uuid.UUID, group: str | None, *, actor: User | None
) -> ProjectMember:
    """Tag a member with a rater group (reports split by it), or clear the tag with None."""
    member = await _member_for_update(session, project, user_id)
    if member.group == group:
        return member
    before, member.group = member.group, group
    await session.flush()
    audit.record(
        session,
        actor=actor,
        action="member.group",
        target_type="user",
        target_id=user_id,
        project_id=project.id,
        data={"group": group, "before": before},
    )
    log.info("member.group", project_id=str(project.id), user_id=str(user_id), group=group)
    return member


async def set_suspension(
    session: AsyncSession, project: Project, user_id: uuid.UUID, data: MemberUpdate, *, actor: User | None
) -> ProjectMember:
    """Suspend a member in this project (their leases end now) or reinstate them."""
    member = await _member_for_update(session, project, user_id)
    if data.suspended and member.suspended_at is None:
        member.suspended_at = func.now()
        member.suspended_reason = data.reason
        await session.flush()
        await labeling.end_leases(session, project_id=project.id, rater_id=user_id, reason=SurplusReason.suspended)
    elif not data.suspended:
        member.suspended_at = None
        member.suspended_reason = None
    await session.flush()
    await session.refresh(member)
    audit.record(
        session,
        actor=actor,
        action="member.suspend" if data.suspended else "member.reinstate",
        target_type="user",
        target_id=user_id,
        project_id=project.id,
        data={"reason": data.reason} if data.suspended and data.reason else None,
    )
    log.info("member.suspension", project_id=str(project.id), user_id=str(user_id), suspended=data.suspended)
    return member


async def set_qualification(
    session: AsyncSession, project: Project, user_id: uuid.UUID, data: QualificationUpdate, *, actor: User
) -> ProjectMember:
    """Admit a member without (passing) the qualification round, or let them try a new round."""
    member = await session.scalar(
        select(ProjectMember)
        .where(ProjectMember.project_id == project.id, ProjectMember.user_id == user_id)
        .with_for_update()
    )
    if member is None:
        raise NotFound(f"User {user_id} is not a member of this project.")
    if data.action == QualificationAction.admit:
        member.qualified_at = member.qualified_at or func.now()
        member.qualification_failed_at = None
    else:
        if member.qualified_at is not None:
            raise Conflict("This member is already admitted; there is no qualification round to try again.")
        member.qualification_failed_at = None
        member.qualification_since = func.now()  # the new round counts gold judgments sent from now
    await session.flush()
    await session.refresh(member)
    audit.record(
        session,
        actor=actor,
        action=f"member.qualification_{data.action.value}",
        target_type="user",
        target_id=user_id,
        project_id=project.id,
    )
    log.info("member.qualification", project_id=str(project.id), user_id=str(user_id), action=data.action.value)
    return member


async def list_members(session: AsyncSession, project: Project) -> list[MemberRead]:
    rows = await session.execute(
        select(User.id, User.email, User.role, ProjectMember)
        .join(ProjectMember, ProjectMember.user_id == User.id)
        .where(ProjectMember.project_id == project.id)
        .order_by(User.email)
    )
    return [
        MemberRead(
            user_id=user_id,
            email=email,
            role=role,
            added_at=m.created_at,
            suspended_at=m.suspended_at,
            suspended_reason=m.suspended_reason,
            qualified_at=m.qualified_at,
            qualification_failed_at=m.qualification_failed_at,
            qualification_result=m.qualification_result,
            group=m.group,
        )
        for user_id, email, role, m in rows
    ]


async def progress(session: AsyncSession, project: Project) -> ProjectProgress:
    """Counts for dashboards (not on the rater's path: these scan the project)."""
    items = (
        await session.execute(
            select(func.count(), func.count(Item.completed_at)).where(
                Item.project_id == project.id, Item.parent_id.is_(None), Item.gold_seq.is_(None)
            )
        )
    ).one()
    judgments = (
        await session.execute(
            select(func.count(), func.count().filter(Judgment.surplus)).where(
                Judgment.project_id == project.id, Judgment.gold.is_(False)
            )
        )
    ).one()
    leases = await session.scalar(
        select(func.count()).where(
            Assignment.project_id == project.id,
            Assignment.status == "leased",
            Assignment.expires_at > func.now(),
        )
    )
    skips = await skip_counts(session, project_id=project.id)
    return ProjectProgress(
        items=items[0],
        completed_items=items[1],
        judgments=judgments[0],
        surplus_judgments=judgments[1],
        active_leases=leases or 0,
        skipped=sum(skips.values()),
        skip_reasons=skips,
    )


async def skip_counts(session: AsyncSession, *, project_id: uuid.UUID) -> dict[str, int]:
    """Skips by reason code ("none" when the rater gave none), every code present (a scan: admin pages only)."""
    rows = await session.execute(
        select(Assignment.skip_reason_code, func.count())
        .where(Assignment.project_id == project_id, Assignment.status == AssignmentStatus.skipped)
        .group_by(Assignment.skip_reason_code)
    )
    counts = {code.value: 0 for code in SkipReason} | {"none": 0}
    for code, count in rows:
        counts[code or "none"] = count
    return counts


async def throughput(
    session: AsyncSession, project: Project, *, hours: int, now: datetime | None = None
) -> list[HourlyCount]:
    """Judgments per hour over the last `hours` hours (UTC), the current hour last, empty hours as 0."""
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours - 1)
    hour = func.date_trunc("hour", Judgment.created_at, "UTC").label("hour")
    # A range scan of ix_judgments_project_created: the cost follows the window, not the project.
    rows = await session.execute(
        select(hour, func.count()).where(Judgment.project_id == project.id, Judgment.created_at >= start).group_by(hour)
    )
    counts = {h.replace(tzinfo=UTC): n for h, n in rows}
    return [
        HourlyCount(hour=start + timedelta(hours=i), judgments=counts.get(start + timedelta(hours=i), 0))
        for i in range(hours)
    ]


async def rater_stats(session: AsyncSession, project: Project, *, since: datetime) -> list[RaterStats]:
    """Per rater since a time: judgments, median active time and last judgment, busiest first."""
    per_rater = (
        select(
            Judgment.rater_id,
            func.count().label("judgments"),
            func.percentile_cont(0.5).within_group(Judgment.active_ms).label("median_active_ms"),
            func.max(Judgment.created_at).label("last_judged_at"),
        )
        .where(Judgment.project_id == project.id, Judgment.created_at >= since)
        .group_by(Judgment.rater_id)
        .subquery()
    )
    rows = await session.execute(
        select(User.id, User.email, User.name, per_rater)
        .join(per_rater, per_rater.c.rater_id == User.id)
        .order_by(per_rater.c.judgments.desc(), User.email)
    )
    return [
        RaterStats(
            user_id=r.id,
            email=r.email,
            name=r.name,
            judgments=r.judgments,
            median_active_ms=r.median_active_ms,
            last_judged_at=r.last_judged_at,
        )
        for r in rows
    ]
