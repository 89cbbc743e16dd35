"""The demo's assistance experiment (server/demo/assistance.py): built from the shipped demo data,
with planted flaws, right and wrong critiques, simulated raters in two groups, and a report to show."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.critiques import report
from server.demo import DEMO_FILE, DEMO_RATER, load_demo
from server.demo.assistance import CRITIQUES, NAME, PLANTED, SIMULATED, records
from server.models import Critique, Item, Judgment, PlantedFlaw, Project, ProjectMember


def test_records_quote_their_spans() -> None:
    items = records(DEMO_FILE)
    assert len(items) == 10
    for record in items:
        texts = [r["text"] for r in record["responses"]]
        for c in record["critiques"]:
            start, end = c["span"]
            quoted = next(q for i, q, *_ in CRITIQUES[record["id"].removeprefix("critiques-")] if i == c["candidate"])
            assert texts[c["candidate"]][start:end] == quoted


async def test_demo_experiment(session: AsyncSession) -> None:
    await load_demo(session, admin_email="admin@example.com", admin_password="x" * 16, rater_password="y" * 16)
    await session.commit()
    project = await session.scalar(select(Project).where(Project.name == NAME))
    assert project is not None
    assert project.assistance == "experiment"
    assert await session.scalar(
        select(func.count()).select_from(PlantedFlaw).where(PlantedFlaw.project_id == project.id)
    ) == len(PLANTED)
    critiques = await session.scalar(
        select(func.count())
        .select_from(Critique)
        .join(Item, Item.id == Critique.item_id)
        .where(Item.project_id == project.id)
    )
    assert critiques == sum(len(v) for v in CRITIQUES.values())
    judgments = await session.scalar(
        select(func.count()).select_from(Judgment).where(Judgment.project_id == project.id)
    )
    assert judgments == 10 * sum(SIMULATED.values())  # every simulated rater judged every item
    groups = dict(
        (
            await session.execute(
                select(ProjectMember.group, func.count())
                .where(ProjectMember.project_id == project.id)
                .group_by(ProjectMember.group)
            )
        ).all()
    )
    assert groups == {"expert": 2, "novice": 6, None: 2}  # the admin who created it and the demo rater
    figures = await report.assistance_report(session, project)
    assert figures["statement"] is None
    assisted, unassisted = figures["arms"]["assisted"], figures["arms"]["unassisted"]
    assert assisted["judgments"] + unassisted["judgments"] == judgments
    assert assisted["judgments"] >= 30  # balanced per rater by the server: 5 of 10 each, give or take one
    assert unassisted["judgments"] >= 30
    assert assisted["catch_rate"] is not None
    assert assisted["flaws_per_item"] is not None  # simulated raters marked flaws with their verdicts
    assert figures["differences"]["catch_rate"]["sentence"].startswith("With critiques, raters caught")
    novices = await report.assistance_report(session, project, group="novice")
    assert novices["arms"]["assisted"]["raters"] == 6
    # The demo rater still has every item to judge.
    assert DEMO_RATER
