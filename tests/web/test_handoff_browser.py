"""The hand-off section of the quality page in a real browser, at 1280x800 and 390x844: the counts,
the spot checks' agreement, the reliability diagram and the suggested threshold; screenshots in artifacts/."""

import random
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from server.labeling import service
from server.labeling.schemas import JudgmentCreate
from server.models import Role
from tests.factories import PASSWORD, create_model, create_project, create_user, import_items, native_items
from tests.web.conftest import BrowserLog, login
from tests.web.test_admin_browser import NARROW, _assert_clean, _contrast_failures, _fits_width, _full_shot


async def _judge_everything(session: AsyncSession, project, rater, pick) -> None:  # type: ignore[no-untyped-def]
    while (leased := await service.next_assignment(session, project=project, rater=rater)) is not None:
        choice, confidence = pick(leased)
        data = JudgmentCreate(choice=choice, confidence=confidence)
        await service.submit(session, assignment_id=leased.assignment.id, rater=rater, data=data)
        await session.commit()


class TestHandoffOnTheQualityPage:
    async def test_counts_agreement_and_the_reliability_diagram(
        self, page, session: AsyncSession, browser_log: BrowserLog, artifacts: Path
    ) -> None:
        admin = await create_user(session, role=Role.admin, email="admin@example.com")
        human, other, model = await create_user(session), await create_user(session), await create_model(session)
        rule = {"min_confidence": 0.8, "min_judges": 1, "spot_check_rate": 0.5}
        project = await create_project(session, admin, members=(human, other, model), overlap=2, handoff=rule)
        await import_items(session, project, admin, native_items(120))
        rng = random.Random(5)

        def model_pick(leased):  # type: ignore[no-untyped-def]
            # right (the candidate uploaded first) with probability c: a calibrated model
            c = rng.uniform(0.5, 1.0)
            ordered = sorted(leased.candidates, key=lambda x: x.position)
            return (ordered[0] if rng.random() < c else ordered[1]).id, round(c, 3)

        await _judge_everything(session, project, model, model_pick)
        await _judge_everything(
            session, project, human, lambda leased: (min(leased.candidates, key=lambda x: x.position).id, None)
        )

        def mostly_right(leased):  # type: ignore[no-untyped-def]
            ordered = sorted(leased.candidates, key=lambda x: x.position)
            return (ordered[0] if rng.random() < 0.9 else ordered[1]).id, None

        await _judge_everything(session, project, other, mostly_right)
        await login(page, admin.email, PASSWORD)
        await page.goto(f"/admin/projects/{project.id}/quality")
        section = page.locator("#handoff")
        text = " ".join((await section.inner_text()).split())
        assert "items resolved by model judges" in text
        assert "spot checks" in text
        assert await section.locator("svg circle").count() >= 3  # bins below 0.8 and the spot-checked ones
        suggestion = " ".join((await page.locator("#handoff-suggestion").inner_text()).split())
        assert suggestion.startswith("Suggested threshold, to keep 40% of items from humans within 1 point")
        assert "The threshold in force is 0.8" in suggestion
        assert await _contrast_failures(page) == []
        await section.scroll_into_view_if_needed()
        await _full_shot(page, artifacts, "handoff-quality-1280")
        await page.set_viewport_size(NARROW)
        await page.goto(f"/admin/projects/{project.id}/quality")
        assert await _fits_width(page)
        await page.locator("#handoff").scroll_into_view_if_needed()
        await page.screenshot(path=str(artifacts / "handoff-quality-390.png"))
        _assert_clean(browser_log)
