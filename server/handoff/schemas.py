from pydantic import Field

from server.schemas import Schema


class Rate(Schema):
    estimate: float | None = Field(description="The share (null: nothing measured yet).")
    ci: list[float] = Field(description="Its 95% Wilson interval [low, high] ([0, 1] with no data).")


class ConfidenceBin(Schema):
    confidence_low: float
    confidence_high: float = Field(description="The bin is [low, high); the last one includes 1.")
    judgments: int = Field(description="Model verdicts in the bin on items humans then labelled.")
    agreement: float | None = Field(description="Their share matching the humans' label (null: none).")
    ci: list[float] = Field(description="Its 95% Wilson interval.")


class Cost(Schema):
    estimate: float | None = Field(
        description="Label accuracy lost against all-human labeling (negative: gained; null: unknown)."
    )
    ci: list[float] = Field(description="Its 95% interval [low, high] (empty when unknown).")


class ThresholdPoint(Schema):
    threshold: float
    human_share: float = Field(
        description="Share of the routed items this threshold sends to humans (spot checks too)."
    )
    estimated_cost: Cost


class Calibration(Schema):
    checked_verdicts: int = Field(description="Checked model verdicts the estimates rest on.")
    humans_accuracy: float | None = Field(description="The humans' label accuracy, from their pairwise agreement.")
    problem: str | None = Field(description="Why nothing can be estimated yet (null: the estimates stand).")


class Meets(Schema):
    savings: bool = Field(description="The suggested threshold keeps the goal's share of items from humans.")
    budget: bool = Field(description="Its estimated cost is within the budget.")


class Goal(Schema):
    savings: float
    budget: float
    bound: str = Field(description="estimate or upper: how the budget was checked.")


class Suggestion(Schema):
    threshold: float | None = Field(description="The min_confidence to set (null: none can be suggested).")
    human_share: float | None
    estimated_cost: Cost | None
    meets: Meets
    reason: str = Field(description="The suggestion in a sentence, or why the goals cannot be met.")
    goal: Goal


class HandoffReport(Schema):
    model_resolved: int = Field(description="Items labelled by the model judges.")
    human_resolved: int = Field(description="Items humans labelled after the model phase (spot checks included).")
    spot_checked: int = Field(
        description="Items the models would have resolved, sent to humans anyway (labelled yet or not)."
    )
    human_judgments_saved: int = Field(description="Human judgments the model-resolved items did not need.")
    spot_check_agreement: Rate = Field(
        description="Model verdicts on spot-checked items matching the humans' label: the accuracy of model labels."
    )
    bins: list[ConfidenceBin] = Field(description="Agreement with humans by the models' confidence (calibration).")
    thresholds: list[ThresholdPoint] = Field(
        description="Each candidate threshold's human share and estimated cost in accuracy (handoff/threshold.py)."
    )
    calibration: Calibration
    suggestion: Suggestion = Field(description="The threshold suggested for the goals asked (savings, budget).")
