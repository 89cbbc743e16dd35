import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, IdMixin, TimestampMixin


class Scale(enum.StrEnum):
    binary = "binary"
    four_point = "4-point"
    eight_point = "8-point"

    @property
    def max_strength(self) -> int:
        """Strength runs 1..max: 1 = barely better, max = much better (binary has no strength)."""
        return {"binary": 1, "4-point": 2, "8-point": 4}[self.value]


class RationaleRule(enum.StrEnum):
    off = "off"
    optional = "optional"
    required = "required"


class Assistance(enum.StrEnum):
    """Whether raters are shown evaluation assistance (critiques): always, never, or by experiment."""

    always = "always"
    never = "never"
    experiment = "experiment"  # decided per assignment at lease time, balanced per rater


class SubtasksGate(enum.StrEnum):
    required = "required"  # a parent is served only when each of its subtasks has its counted judgments
    optional = "optional"  # parents and subtasks are served independently


class CritiqueRatings(enum.StrEnum):
    optional = "optional"
    required = "required"  # every critique shown must be rated with the verdict


class Project(IdMixin, TimestampMixin, Base):
    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint("overlap BETWEEN 1 AND 100", name="overlap"),
        CheckConstraint("lease_seconds BETWEEN 30 AND 86400", name="lease_seconds"),
        CheckConstraint("scale IN ('binary', '4-point', '8-point')", name="scale"),
        CheckConstraint("rationale IN ('off', 'optional', 'required')", name="rationale"),
        CheckConstraint("gold_rate >= 0 AND gold_rate <= 1", name="gold_rate"),
        CheckConstraint("revision_window_minutes BETWEEN 0 AND 1440", name="revision_window_minutes"),
        CheckConstraint("break_reminder_minutes BETWEEN 0 AND 480", name="break_reminder_minutes"),
        CheckConstraint("fast_seconds > 0 AND fast_seconds <= 600", name="fast_seconds"),
        CheckConstraint("qualification_items BETWEEN 0 AND 100", name="qualification_items"),
        CheckConstraint("qualification_threshold BETWEEN 0 AND 1", name="qualification_threshold"),
        CheckConstraint("suspension_window BETWEEN 0 AND 200", name="suspension_window"),
        CheckConstraint("suspension_threshold BETWEEN 0 AND 1", name="suspension_threshold"),
        CheckConstraint("subtasks_gate IN ('required', 'optional')", name="subtasks_gate"),
    )

    name: Mapped[str] = mapped_column(String(200))
    instructions: Mapped[str] = mapped_column(Text, default="")
    # Rendered once when the instructions are saved (server/markdown.py says why), never per page.
    instructions_html: Mapped[str] = mapped_column(Text, default="", server_default="")
    scale: Mapped[str] = mapped_column(String(16), default=Scale.binary)
    allow_tie: Mapped[bool] = mapped_column(default=False)
    allow_both_bad: Mapped[bool] = mapped_column(default=False)
    rationale: Mapped[str] = mapped_column(String(16), default=RationaleRule.optional)
    overlap: Mapped[int] = mapped_column(default=1)
    lease_seconds: Mapped[int] = mapped_column(default=900)
    is_active: Mapped[bool] = mapped_column(default=True)
    # How long after sending a verdict its rater may revise it (0: never); labeling/revisions.py.
    revision_window_minutes: Mapped[int] = mapped_column(default=10, server_default="10")
    # The rater page suggests a short break after this many minutes on task (0: never).
    break_reminder_minutes: Mapped[int] = mapped_column(default=50, server_default="50")
    # Settings that later issues act on; stored now so the schema does not change shape.
    gold_rate: Mapped[float] = mapped_column(default=0.0, server_default="0")
    active_learning: Mapped[bool] = mapped_column(default=False, server_default="false")
    # After a gold item, show the rater whether they matched and the gold explanation (quality/rules.py).
    gold_feedback: Mapped[bool] = mapped_column(default=False, server_default="false")
    # A qualification round: a rater's first `qualification_items` items are gold (0: no round); at
    # or above `qualification_threshold` accuracy they are admitted (project_members.qualified_at).
    qualification_items: Mapped[int] = mapped_column(default=0, server_default="0")
    qualification_threshold: Mapped[float] = mapped_column(default=0.8, server_default="0.8")
    # The suspension rule: a human rater whose accuracy over their last `suspension_window` scored
    # gold judgments falls below `suspension_threshold` is suspended in the project (0: no rule).
    suspension_window: Mapped[int] = mapped_column(default=0, server_default="0")
    suspension_threshold: Mapped[float] = mapped_column(default=0.7, server_default="0.7")
    assistance_policy: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    # Task trees (server/items/subtasks.py): whether a parent waits for its subtasks' judgments.
    subtasks_gate: Mapped[str] = mapped_column(String(16), default=SubtasksGate.required, server_default="required")
    # The hand-off rule (labeling/handoff.py): {"min_confidence", "min_judges", "spot_check_rate"};
    # null: every item goes to humans.
    handoff: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Counts up whenever items may have moved ahead in the serving order (an import, a batch
    # resumed or reprioritised, a new overlap, active learning): raters' resume points from an
    # older epoch are not trusted (see labeling/service.py).
    queue_epoch: Mapped[int] = mapped_column(default=0, server_default="0")
    # Quality (server/quality/raters.py): a judgment made in less active time than this is "fast";
    # a rater whose median is below it, significantly more often than the others, is flagged.
    fast_seconds: Mapped[float] = mapped_column(default=3.0, server_default="3")
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Archived (batches/lifecycle.py): hidden from raters, nothing served, leases ended, all data kept
    # and exported; reversible. Deleted: its batches, items, assignments and judgments are gone; the
    # row stays as a tombstone so export manifests and the audit log keep their project.
    archived_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]

    # The assistance settings live in `assistance_policy` ({"assistance", "ratio", "critique_ratings"});
    # these read and write them as the API names them.
    def _policy(self, key: str, value: Any) -> None:
        self.assistance_policy = {**(self.assistance_policy or {}), key: value}  # a new dict: the change is seen

    @property
    def assistance(self) -> str:
        return str((self.assistance_policy or {}).get("assistance", Assistance.never))

    @assistance.setter
    def assistance(self, value: str) -> None:
        self._policy("assistance", str(value))

    @property
    def assistance_ratio(self) -> float:
        return float((self.assistance_policy or {}).get("ratio", 0.5))

    @assistance_ratio.setter
    def assistance_ratio(self, value: float) -> None:
        self._policy("ratio", float(value))

    @property
    def critique_ratings(self) -> str:
        return str((self.assistance_policy or {}).get("critique_ratings", CritiqueRatings.optional))

    @critique_ratings.setter
    def critique_ratings(self, value: str) -> None:
        self._policy("critique_ratings", str(value))


class ProjectMember(Base):
    __tablename__ = "project_members"

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Suspension in this project (by an admin, or by a quality rule): leases end, nothing new is served.
    suspended_at: Mapped[datetime | None]
    suspended_reason: Mapped[str | None] = mapped_column(Text)
    # Where this rater's last pick was in the serving order (-batch_priority, -priority, seq) and
    # under which queue epoch: the next pick resumes after it instead of walking past every
    # still-open item the rater has already judged.
    resume_kb: Mapped[int | None]
    resume_kp: Mapped[float | None]
    resume_seq: Mapped[int | None] = mapped_column(BigInteger)
    resume_epoch: Mapped[int | None]
    # The `gold_seq` of the last gold item served to this rater: the next one comes after it.
    gold_resume: Mapped[int | None] = mapped_column(BigInteger)
    # The qualification round (projects.qualification_items): admitted at `qualified_at`; not
    # admitted at `qualification_failed_at`, with the result in plain words; a new try counts the
    # gold judgments sent after `qualification_since` (null: all of them).
    qualified_at: Mapped[datetime | None]
    qualification_failed_at: Mapped[datetime | None]
    qualification_result: Mapped[str | None] = mapped_column(Text)
    qualification_since: Mapped[datetime | None]
    # An assistance experiment's arms for this rater (critiques/assistance.py): leases decided so
    # far, and how many of them were shown assistance. Read and written under the membership lock.
    assist_leases: Mapped[int] = mapped_column(default=0, server_default="0")
    assist_shown: Mapped[int] = mapped_column(default=0, server_default="0")
    # A tag for splitting reports by kind of rater (e.g. "expert"); task trees send subtasks to a group.
    group: Mapped[str | None] = mapped_column(String(64))


class QueueMove(Base):
    """What a change of the serving order moved ahead (labeling/queue.py): one row per queue epoch.

    A rater whose resume point is from an older epoch rewinds to the smallest `rewind` key of the
    epochs since, instead of walking the order from the start; `from_start` says the change could
    not name what it moved (the safe default), `rewind_seq` null says nothing open moved.
    """

    __tablename__ = "queue_moves"

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(primary_key=True)
    from_start: Mapped[bool] = mapped_column(default=True)
    # The serving-order key (-batch_priority, -priority, seq) of the first open item moved ahead.
    rewind_kb: Mapped[int | None]
    rewind_kp: Mapped[float | None]
    rewind_seq: Mapped[int | None] = mapped_column(BigInteger)
