import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StrictFloat, StrictInt, StringConstraints

from server.critiques.schemas import (
    MAX_FLAWS,
    MAX_RATER_CRITIQUES,
    AssistanceView,
    CritiqueRatingCreate,
    FlawCreate,
    RaterCritiqueCreate,
)
from server.models import Prompt, SkipReason
from server.schemas import Schema

MAX_SKIP_REASON = 2000


class CandidateView(Schema):
    """A candidate as a rater sees it: no model name, so it cannot sway the verdict."""

    id: uuid.UUID
    label: str = Field(description="A, B, C… in the order shown to this rater.")
    text: str | None = None
    messages: list[dict[str, str]] | None = None


class SubtaskTarget(Schema):
    """The candidate of its tree a subtask asks about (and the span of it, when it names one)."""

    id: uuid.UUID
    text: str | None = None
    messages: list[dict[str, str]] | None = None
    span: list[int] | None = Field(default=None, description="[start, end) in code points of the response.")
    message: int | None = Field(default=None, description="The chat message the span is in.")


class ItemView(Schema):
    id: uuid.UUID
    external_id: str
    prompt: Prompt
    candidates: list[CandidateView]
    kind: str = Field(default="comparison", description="comparison, check, rating or answer (a subtask).")
    question: str | None = Field(default=None, description="A subtask's question.")
    scale: list[float] | None = Field(default=None, description="A rating's [min, max].")
    candidate: SubtaskTarget | None = Field(default=None, description="The response a subtask asks about.")


class SubtaskResultView(Schema):
    """A subtask's results, shown to the rater of its parent as assistance."""

    item_id: uuid.UUID
    kind: str
    question: str | None
    answer: str | int | float | None = Field(description="The aggregated answer (a rating: the median).")
    agreement: float | None = Field(description="Share of the counted answers agreeing with it.")
    answers: int = Field(description="How many counted answers it aggregates.")
    rationales: list[str]
    candidate_id: uuid.UUID | None = Field(description="The parent's candidate it concerns.")
    span: list[int] | None


class AssignmentAssistance(AssistanceView):
    subtasks: list[SubtaskResultView] = Field(default_factory=list, description="The item's subtasks' results.")


class AssignmentRead(Schema):
    id: uuid.UUID
    project_id: uuid.UUID
    status: str
    leased_at: datetime
    expires_at: datetime
    item: ItemView
    assistance_shown: bool = Field(default=False, description="Whether this assignment shows assistance.")
    assistance: AssignmentAssistance | None = Field(
        default=None,
        description="The critiques and subtask results shown; the key is present only when assistance_shown is true.",
        exclude_if=lambda value: value is None,
    )


class JudgmentCreate(Schema):
    choice: uuid.UUID | None = Field(default=None, description="The preferred candidate's id.")
    ranking: list[uuid.UUID] | None = Field(
        default=None, max_length=1000, description="Every candidate id, best first."
    )
    strength: int | None = Field(
        default=None, ge=-1000, le=1000, description="How much better, on the project's scale."
    )
    tie: bool = False
    both_bad: bool = False
    rationale: str | None = Field(default=None, max_length=20_000)
    active_ms: int | None = Field(default=None, ge=0, le=86_400_000)
    answer: StrictInt | StrictFloat | Annotated[str, StringConstraints(strict=True, max_length=2_000)] | None = Field(
        default=None,
        description="A subtask's answer: yes, no or unsure (a check), a number on its scale (a rating), a text.",
    )
    confidence: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="A model judge's probability that its verdict is right (0 to 1); model accounts only.",
    )
    # Part of the judgment besides the verdict (a revision replaces them).
    critique_ratings: list[CritiqueRatingCreate] | None = Field(
        default=None, max_length=100, description="Your rating of each critique you were shown."
    )
    critiques: list[RaterCritiqueCreate] | None = Field(
        default=None, max_length=MAX_RATER_CRITIQUES, description="Critiques you write of the candidates."
    )
    flaws: list[FlawCreate] | None = Field(
        default=None, max_length=MAX_FLAWS, description="Flaws you mark in the candidates: a span, severity, note."
    )


class GoldFeedbackRead(Schema):
    """After a gold item, in a project that turns feedback on."""

    matched: bool | None = Field(description="Whether the answer matched the known one (null: not compared).")
    message: str = Field(description="The same, in a sentence.")
    explanation: str | None = Field(description="Why the known answer is right, as the project wrote it.")


class JudgmentRead(Schema):
    id: uuid.UUID
    assignment_id: uuid.UUID
    item_id: uuid.UUID
    choice: uuid.UUID | None = Field(validation_alias="choice_id")
    ranking: list[uuid.UUID] | None
    strength: int | None
    tie: bool
    both_bad: bool
    rationale: str | None
    active_ms: int | None
    answer: str | int | float | None = None
    surplus: bool = Field(description="Stored but not counted toward the item's overlap.")
    surplus_reason: str | None = Field(
        description="Why it is not counted: filled (the item already had its judgments), removed, suspended."
    )
    rater_kind: str = Field(default="human", description="human, or model for a model judge's verdict.")
    confidence: float | None = Field(default=None, description="A model judge's confidence (null for humans).")
    created_at: datetime
    revision: int = Field(description="1 for the verdict first sent; each revision by its rater counts up.")
    revised_at: datetime | None = Field(description="When the current revision was sent (null: never revised).")
    feedback: GoldFeedbackRead | None = Field(
        default=None, description="Set after an item with a known answer, when the project shows feedback."
    )


class JudgmentRefusal(Schema):
    """A 409 that stored the verdict uncounted: why, and the stored judgment."""

    detail: str
    judgment: JudgmentRead | None = Field(
        default=None, description="The verdict, stored but not counted; absent when nothing was stored."
    )


class SkipCreate(Schema):
    reason_code: SkipReason | None = Field(
        default=None, description="Why: unclear, harmful, cannot_judge or other (optional)."
    )
    reason: str | None = Field(default=None, max_length=MAX_SKIP_REASON, description="In the rater's words (optional).")


class LeaseRead(Schema):
    id: uuid.UUID
    status: str
    expires_at: datetime
