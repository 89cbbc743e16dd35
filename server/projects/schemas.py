import enum
import re
import uuid
from datetime import datetime

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from server.markdown import MAX_INSTRUCTIONS
from server.models import Assistance, CritiqueRatings, RationaleRule, Scale, SubtasksGate
from server.schemas import Schema

MAX_REVISION_WINDOW = 1440  # a day, in minutes (the database checks the same bound)
MAX_FAST_SECONDS = 600.0  # ten minutes (the database checks the same bound)
# An experiment with almost every assignment in one arm measures nothing about the other.
MIN_ASSISTANCE_RATIO, MAX_ASSISTANCE_RATIO = 0.05, 0.95
ASSISTANCE_DOC = (
    "Critiques shown to raters: never (the default), always, or experiment (the server decides per "
    "assignment, at lease time, balanced per rater)."
)
GATE_DOC = (
    "Task trees: required serves an item only when each of its subtasks has its counted judgments; "
    "optional serves items and subtasks independently."
)
RATIO_DOC = "In an experiment, the share of each rater's assignments shown assistance (0.05 to 0.95)."
RATINGS_DOC = "Whether raters must rate every critique they are shown (optional or required)."


HANDOFF_DOC = (
    "Offer each new item to model judges first: {min_confidence, min_judges, spot_check_rate}. "
    "Absent or null: every item goes to humans (null in an update turns it off and opens held items to humans)."
)


class HandoffRule(Schema):
    """The hand-off rule (server/handoff/rules.py)."""

    min_confidence: float = Field(
        default=0.8, ge=0.0, le=1.0, allow_inf_nan=False, description="Every model must be at least this sure."
    )
    min_judges: int = Field(default=1, ge=1, le=10, description="Model judgments wanted before an item is routed.")
    spot_check_rate: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Share of model-resolved items sent to humans anyway, to measure the models.",
    )


class ProjectBase(Schema):
    instructions: str = Field(
        default="", max_length=MAX_INSTRUCTIONS, description="Markdown shown to raters (rendered when saved)."
    )
    scale: Scale = Scale.binary
    allow_tie: bool = False
    allow_both_bad: bool = False
    rationale: RationaleRule = RationaleRule.optional
    overlap: int = Field(default=1, ge=1, le=100, description="Distinct raters wanted per item.")
    lease_seconds: int = Field(default=900, ge=30, le=86400)
    is_active: bool = True
    break_reminder_minutes: int = Field(
        default=50, ge=0, le=480, description="Minutes on task before the rater page suggests a break; 0 never does."
    )
    active_learning: bool = False
    gold_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    fast_seconds: float = Field(
        default=3.0,
        gt=0.0,
        le=MAX_FAST_SECONDS,
        description="Judgments faster than this many seconds of active time count as fast (the speed flag).",
    )
    revision_window_minutes: int = Field(
        default=10,
        ge=0,
        le=MAX_REVISION_WINDOW,
        description="How long after sending a verdict its rater may revise it, in minutes; 0 turns revision off.",
    )
    gold_feedback: bool = Field(
        default=False,
        description="After a gold item, show the rater whether their answer matched and the gold explanation "
        "(such a verdict can no longer be revised).",
    )
    qualification_items: int = Field(
        default=0, ge=0, le=100, description="A rater's first K items are gold, a qualification round; 0: none."
    )
    qualification_threshold: float = Field(
        default=0.8, ge=0.0, le=1.0, description="Gold accuracy a rater needs in the qualification round."
    )
    suspension_window: int = Field(
        default=0,
        ge=0,
        le=200,
        description="Suspend a human rater whose accuracy over their last N scored gold judgments is below "
        "suspension_threshold (judged once they have N), or whose agreement the quality figures flag on at least 50 "
        "compared answers (checked at each gold judgment); 0 turns the rule off. A threshold of 0 keeps only the "
        "agreement part.",
    )
    suspension_threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    assistance: Assistance = Field(default=Assistance.never, description=ASSISTANCE_DOC)
    assistance_ratio: float = Field(
        default=0.5, ge=MIN_ASSISTANCE_RATIO, le=MAX_ASSISTANCE_RATIO, description=RATIO_DOC
    )
    critique_ratings: CritiqueRatings = Field(default=CritiqueRatings.optional, description=RATINGS_DOC)
    subtasks_gate: SubtasksGate = Field(default=SubtasksGate.required, description=GATE_DOC)
    handoff: HandoffRule | None = Field(default=None, description=HANDOFF_DOC)


class ProjectCreate(ProjectBase):
    name: str = Field(min_length=1, max_length=200)


class ProjectUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    instructions: str | None = Field(default=None, max_length=MAX_INSTRUCTIONS)
    scale: Scale | None = None
    allow_tie: bool | None = None
    allow_both_bad: bool | None = None
    rationale: RationaleRule | None = None
    overlap: int | None = Field(default=None, ge=1, le=100)
    lease_seconds: int | None = Field(default=None, ge=30, le=86400)
    is_active: bool | None = None
    break_reminder_minutes: int | None = Field(default=None, ge=0, le=480)
    active_learning: bool | None = None
    gold_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    fast_seconds: float | None = Field(default=None, gt=0.0, le=MAX_FAST_SECONDS)
    revision_window_minutes: int | None = Field(default=None, ge=0, le=MAX_REVISION_WINDOW)
    archived: bool | None = Field(
        default=None,
        description="true archives the project: hidden from raters, nothing served, live leases end now; all data "
        "is kept and exported. false brings it back.",
    )
    gold_feedback: bool | None = None
    qualification_items: int | None = Field(default=None, ge=0, le=100)
    qualification_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    suspension_window: int | None = Field(default=None, ge=0, le=200)
    suspension_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    assistance: Assistance | None = Field(default=None, description=ASSISTANCE_DOC)
    assistance_ratio: float | None = Field(
        default=None, ge=MIN_ASSISTANCE_RATIO, le=MAX_ASSISTANCE_RATIO, description=RATIO_DOC
    )
    critique_ratings: CritiqueRatings | None = Field(default=None, description=RATINGS_DOC)
    subtasks_gate: SubtasksGate | None = Field(default=None, description=GATE_DOC)
    handoff: HandoffRule | None = Field(default=None, description=HANDOFF_DOC)


class ProjectRead(ProjectBase):
    id: uuid.UUID
    name: str
    created_at: datetime
    updated_at: datetime | None
    archived_at: datetime | None = Field(default=None, description="When the project was archived; null if it is not.")

    instructions_html: str = Field(description="The instructions rendered from Markdown (raw HTML shown as text).")


class MemberAdd(Schema):
    user_id: uuid.UUID


class MemberRead(Schema):
    user_id: uuid.UUID
    email: str
    role: str
    added_at: datetime
    suspended_at: datetime | None = None
    suspended_reason: str | None = None
    qualified_at: datetime | None = None
    qualification_failed_at: datetime | None = None
    qualification_result: str | None = Field(default=None, description="The last qualification round, in words.")
    group: str | None = Field(default=None, description="The member's rater group (such as expert), or null.")


MAX_GROUP = 64  # characters (the column's bound)
GROUP_PATTERN = re.compile(r"[a-z0-9_-]{1,64}")
GROUP_DOC = (
    "A tag for splitting reports by kind of rater, such as expert: 1 to 64 lowercase letters, digits, - or _; "
    "null clears it."
)
GROUP_RULE = "must be 1 to 64 lowercase letters, digits, - or _ (such as expert)"


def check_group(value: str | None) -> str | None:
    """A rater group tag as given, or PydanticCustomError saying in words why it is not one."""
    if value is None or GROUP_PATTERN.fullmatch(value):
        return value
    if value == "":
        raise PydanticCustomError("group", f"{GROUP_RULE}; send null to clear a member's group")
    if GROUP_PATTERN.fullmatch(value.lower()):
        raise PydanticCustomError("group", f"{GROUP_RULE}; write it in lowercase: {value.lower()}")
    raise PydanticCustomError("group", GROUP_RULE)


class MemberUpdate(Schema):
    """Either part may be sent alone; at least one must be."""

    suspended: bool | None = Field(
        default=None, description="true suspends the member in this project (their leases end now); false reinstates."
    )
    reason: str | None = Field(default=None, max_length=500, description="Shown to the rater and the admins.")
    group: str | None = Field(default=None, max_length=MAX_GROUP, description=GROUP_DOC)

    @field_validator("group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return check_group(value)


class QualificationAction(enum.StrEnum):
    admit = "admit"
    retry = "retry"


class QualificationUpdate(Schema):
    action: QualificationAction = Field(
        description="admit: the member may label without (passing) the qualification round; retry: they get a "
        "new round of gold items they have not seen."
    )


class ProjectProgress(Schema):
    items: int
    completed_items: int
    judgments: int
    surplus_judgments: int
    active_leases: int
    skipped: int = Field(description="Items raters skipped (each rater's skip of an item counts once).")
    skip_reasons: dict[str, int] = Field(
        description="Skips by reason code (unclear, harmful, cannot_judge, other; none: no code given)."
    )


class HourlyCount(Schema):
    hour: datetime = Field(description="Start of the hour (UTC).")
    judgments: int


class RaterStats(Schema):
    user_id: uuid.UUID
    email: str
    name: str
    judgments: int
    median_active_ms: float | None = Field(description="Median active time per judgment; null when none was sent.")
    last_judged_at: datetime


class Deleted(Schema):
    """What a deletion removed (export manifests and the audit log are kept)."""

    items: int
    judgments: int
    raters: int = Field(description="Distinct raters whose judgments were removed.")
    message: str
