"""Projects whose items compare labelled models, judged with chosen verdicts through the real labeling service."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.labeling import service as labeling
from server.labeling.schemas import JudgmentCreate
from server.models import Project, User

# A verdict by positions in upload order: ("choose", 1), ("rank", [2, 0, 1]), ("tie",), ("both_bad",).
Verdict = tuple[Any, ...]


def item(external_id: str, *models: str | None) -> dict[str, Any]:
    """A native record whose responses come from these models (None: no label)."""
    responses = []
    for k, model in enumerate(models):
        response: dict[str, Any] = {"text": f"Response {k} of {external_id}"}
        if model is not None:
            response["model"] = model
        responses.append(response)
    return {"id": external_id, "prompt": f"Prompt {external_id}?", "responses": responses}


async def judge_all(session: AsyncSession, project: Project, rater: User, verdicts: dict[str, Verdict]) -> int:
    """Lease every item the rater can get and judge it with its verdict; returns how many were judged."""
    judged = 0
    while (leased := await labeling.next_assignment(session, project=project, rater=rater)) is not None:
        by_position = sorted(leased.candidates, key=lambda c: c.position)
        kind, *args = verdicts[leased.item.external_id]
        if kind == "choose":
            data = JudgmentCreate(choice=by_position[args[0]].id)
        elif kind == "rank":
            data = JudgmentCreate(ranking=[by_position[p].id for p in args[0]])
        else:
            data = JudgmentCreate(tie=kind == "tie", both_bad=kind == "both_bad")
        await labeling.submit(session, assignment_id=leased.assignment.id, rater=rater, data=data)
        await session.commit()
        judged += 1
    return judged
