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
