import uuid
from datetime import datetime

from pydantic import Field

from server.models import CritiqueVerdict, Severity
from server.schemas import Schema

MAX_CRITIQUE_CHARS = 5000
MAX_AUTHOR_CHARS = 200  # critiques.author_model is varchar(200)
MAX_CRITIQUES_PER_ITEM = 100  # every critique of an item's candidates, from every source
MAX_CRITIQUES_PER_POST = 50
MAX_RATER_CRITIQUES = 16  # written by one rater with one judgment (a box per candidate)
MAX_MESSAGE_INDEX = 1000  # the import's bound on messages in a response
MAX_FLAWS = 50  # flaws one rater marks with one judgment
MAX_FLAW_NOTE = 1000
MAX_PLANTED_PER_CANDIDATE = 20  # planted flaws in one response (import and API)
MAX_PLANTED_DESCRIPTION = 2000

SPAN_DOC = "[start, end) in Unicode code points of the candidate's text, or of messages[message].content."


class CritiqueCreate(Schema):
    candidate_id: uuid.UUID = Field(description="The candidate the critique is about.")
    text: str = Field(min_length=1, max_length=MAX_CRITIQUE_CHARS)
    author: str = Field(min_length=1, max_length=MAX_AUTHOR_CHARS, description="The model that wrote it.")
    span: list[int] | None = Field(default=None, max_length=2, description=SPAN_DOC)
    message: int | None = Field(
        default=None, ge=0, le=MAX_MESSAGE_INDEX, description="For a chat candidate: the message the span is in."
    )
    severity: Severity | None = None


class CritiquesCreate(Schema):
    critiques: list[CritiqueCreate] = Field(min_length=1, max_length=MAX_CRITIQUES_PER_POST)


class CritiqueRead(Schema):
    id: uuid.UUID
    item_id: uuid.UUID
    candidate_id: uuid.UUID
    text: str
    author: str = Field(description="A model's name, or the id of the user who wrote it.")
    span: list[int] | None
    message: int | None
    severity: Severity | None
    created_at: datetime


class CritiqueView(Schema):
    """A critique as a rater is shown it: a rater author stays anonymous ("rater")."""

    id: uuid.UUID
    candidate_id: uuid.UUID
    text: str
    author: str
    span: list[int] | None = Field(description=SPAN_DOC)
    message: int | None = None
    severity: Severity | None = None


class AssistanceView(Schema):
    critiques: list[CritiqueView]


class CritiqueRatingCreate(Schema):
    critique_id: uuid.UUID
    verdict: CritiqueVerdict = Field(description="Is the critique right: valid, invalid or unsure.")
    helpful: bool | None = Field(default=None, description="Did it help you judge?")


class RaterCritiqueCreate(Schema):
    """A critique a rater writes with their verdict (a box per candidate on the page)."""

    candidate_id: uuid.UUID
    text: str = Field(min_length=1, max_length=MAX_CRITIQUE_CHARS)
    span: list[int] | None = Field(default=None, max_length=2, description=SPAN_DOC)
    message: int | None = Field(default=None, ge=0, le=MAX_MESSAGE_INDEX)
    severity: Severity | None = None


class CritiqueRatingRead(Schema):
    critique_id: uuid.UUID
    verdict: CritiqueVerdict
    helpful: bool | None


class FlawCreate(Schema):
    """A flaw a rater marks in a candidate, sent with their verdict."""

    candidate_id: uuid.UUID = Field(description="The candidate the flaw is in.")
    span: list[int] = Field(max_length=2, description=SPAN_DOC)
    message: int | None = Field(
        default=None, ge=0, le=MAX_MESSAGE_INDEX, description="For a chat candidate: the message the span is in."
    )
    severity: Severity = Field(description="minor, major or critical.")
    note: str | None = Field(default=None, max_length=MAX_FLAW_NOTE, description="What is wrong, in a few words.")


class FlawRead(Schema):
    id: uuid.UUID
    candidate_id: uuid.UUID
    span: list[int]
    message: int | None
    severity: Severity | None
    note: str | None


class PlantedCreate(Schema):
    """A flaw planted on purpose in a candidate (hidden from raters)."""

    span: list[int] = Field(max_length=2, description=SPAN_DOC)
    message: int | None = Field(default=None, ge=0, le=MAX_MESSAGE_INDEX)
    description: str = Field(min_length=1, max_length=MAX_PLANTED_DESCRIPTION, description="What was planted.")


class PlantedForCandidate(Schema):
    candidate_id: uuid.UUID
    planted: list[PlantedCreate] = Field(max_length=MAX_PLANTED_PER_CANDIDATE)


class PlantedPut(Schema):
    """Every planted flaw of an item, per candidate; replaces those it had (a candidate left out keeps none)."""

    candidates: list[PlantedForCandidate] = Field(max_length=100)


class PlantedRead(Schema):
    id: uuid.UUID
    candidate_id: uuid.UUID
    span: list[int]
    message: int | None
    description: str


class ArmRead(Schema):
    """One arm of an assistance experiment: judgments, raters and each figure (null: not measured)."""

    judgments: int
    raters: int
    gold_accuracy: float | None = Field(description="Mean gold score of the arm's judgments on gold items.")
    catch_rate: float | None = Field(description="Planted flaws caught / planted flaws present.")
    agreement: float | None = Field(description="Share of pairs matching the others' aggregated label.")
    median_seconds: float | None = Field(description="Median active time per judgment.")
    flaws_per_item: float | None = Field(description="Flaws marked per judgment.")


class ArmsRead(Schema):
    assisted: ArmRead
    unassisted: ArmRead


class NeededRead(Schema):
    effect: float
    effect_units: str = Field(description="points (proportions) or share of the unassisted value.")
    judgments_total: int = Field(description="Judgments, both arms, to detect the effect at 80% power, alpha 0.05.")
    judgments_more: int = Field(description="Of which not yet made.")


class DifferenceRead(Schema):
    """Assisted minus unassisted for one figure."""

    estimate: float | None
    ci: tuple[float, float] | None = Field(description="95% interval, cluster bootstrap over raters.")
    p: float | None = Field(description="Two-sided permutation p-value (arms relabelled within each rater).")
    significant: bool | None
    judgments: int
    raters: int
    design_effect: float | None
    needed: NeededRead | None
    note: str | None = Field(description="Why there is no interval, when there is none.")
    sentence: str = Field(description="The result in words, as the report page shows it.")


class AssistanceReportRead(Schema):
    arms: ArmsRead
    differences: dict[str, DifferenceRead] = Field(
        description="gold_accuracy, catch_rate, agreement, median_seconds, flaws_per_item."
    )
    statement: str | None = Field(description="Why nothing can be compared, when nothing can.")
    assistance: str = Field(description="The project's assistance setting: never, always or experiment.")
    experiment: bool = Field(description="Whether the project runs an experiment now.")
    effect: float
    group: str | None
    batch_id: uuid.UUID | None
    outside: int = Field(description="Judgments left out: made outside the experiment, or by model accounts.")
    bootstrap: int
    permutations: int
    seed: int
    level: float
    data_version: str
    stale: bool = Field(description="true: the figures of an older data version, while fresh ones are computed.")
    computed_at: datetime
