# ruff: noqa: E501
"""The task-tree demo `make run` creates: one guide, two summaries, a check per summary and section."""

from sqlalchemy import select

from server.demo.trees import load_trees_demo
from server.labeling import service as labeling
from server.labeling.schemas import JudgmentCreate
from server.models import Candidate, Item, Project, Role
from tests.factories import create_user


async def test_the_demo_tree_is_gated_and_points_at_each_summary_sentence(session) -> None:
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    await load_trees_demo(session, admin_email=admin.email, rater_email=rater.email)
    await session.commit()
    project = (await session.scalars(select(Project))).one()
    items = list(await session.scalars(select(Item).order_by(Item.seq)))
    root, checks = items[0], items[1:]
    assert (root.external_id, root.open_subtasks, len(checks)) == ("tree-guide", 8, 8)
    assert "Section" not in root.prompt[:10]
    summaries = {c.id: c.text for c in await session.scalars(select(Candidate).where(Candidate.item_id == root.id))}
    marked = [summaries[c.subtask_candidate_id][c.span_start : c.span_end] for c in checks]  # type: ignore[index]
    assert (
        marked[2]
        == "Concurrency rules live in database row locks taken in one fixed order, and every locking path has a race test."
    )
    assert marked[6].startswith("Concurrency rules live in the memory of the server process")
    # The rater answers the eight checks; then the whole opens, with their results beside it.
    for _ in range(8):
        leased = await labeling.next_assignment(session, project=project, rater=rater)
        assert leased is not None
        assert leased.item.kind == "check"
        await labeling.submit(
            session, assignment_id=leased.assignment.id, rater=rater, data=JudgmentCreate(answer="yes")
        )
        await session.commit()
    leased = await labeling.next_assignment(session, project=project, rater=rater)
    assert leased is not None
    assert leased.item.id == root.id
    assert [r.result.answer for r in leased.subtasks] == ["yes"] * 8
