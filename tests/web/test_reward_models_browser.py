"""The reward models page in a real browser: the chart and tables render without console errors
(CSP included), fit a phone's width, and keep text contrast; screenshots at 1280 and 390 wide."""

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Item, Role
from server.rewards.schemas import RewardModelCreate, ScoreCreate
from server.rewards.service import record_scores, report
from tests.factories import PASSWORD, create_project, create_user, import_items, native_items
from tests.web.conftest import BrowserLog, login
from tests.web.test_admin_browser import NARROW, _contrast_failures, _fits_width, _full_shot


def _compare(n_validation: int, accuracy: float) -> dict[str, Any]:
    return {
        "n_train": n_validation * 3,
        "n_validation": n_validation,
        "labels_agree": 0.94,
        "weighted": {"accuracy": accuracy, "log_loss": 0.67},
        "majority": {"accuracy": accuracy - 0.022, "log_loss": 0.68},
    }


async def _project_with_models(session: AsyncSession, admin):  # type: ignore[no-untyped-def]
    trainer = await create_user(session, role=Role.trainer)
    project = await create_project(session, admin, members=(trainer,), active_learning=True, name="HH harmless")
    await import_items(session, project, admin, native_items(30))
    for version, (n, accuracy) in enumerate([(300, 0.55), (900, 0.59), (1800, 0.62)], start=1):
        data = RewardModelCreate(
            features="hashed-char-ngrams-2-4-2^18",
            cursor_to=f"c{version}",
            metrics={
                "accuracy": accuracy,
                "log_loss": 0.67,
                "n_pairs": n // 3,
                "n_judgments": n,
                "n_train": n // 4,
                "n_validation": n // 12,
                "training_seconds": 1.1 * version,
            }
            # v2 and v3 were trained on weighted labels, compared with majority labels on the same prompts.
            | ({"labels": "weighted", "compare": _compare(n // 12, accuracy)} if version > 1 else {}),
            artefact_sha256=f"{version}" * 64,
        )
        model, _ = await report(session, project=project, trainer=trainer, data=data)
    items = list(await session.scalars(select(Item.id).where(Item.project_id == project.id).order_by(Item.seq)))
    scores = [ScoreCreate(item_id=i, p=0.3 + 0.02 * k) for k, i in enumerate(items[:20])]
    await record_scores(session, project=project, model=model, scores=scores)
    await session.commit()
    return project


async def test_reward_models_page(page, session: AsyncSession, artifacts: Path, browser_log: BrowserLog) -> None:
    admin = await create_user(session, role=Role.admin)
    project = await _project_with_models(session, admin)
    await login(page, admin.email, PASSWORD)
    await page.goto(f"/admin/projects/{project.id}/reward-models")
    assert await page.locator("#model-versions tbody tr").count() == 3
    # v1 was scored on 25 held-out pairs: too little data to judge, so it is named under the chart, not drawn.
    assert await page.locator("svg.chart-reward-accuracy circle").count() == 2
    assert await page.inner_text("#chart-left-out") == (
        "Not drawn, too little data to judge (under 50 held-out pairs): v1 (25 held-out pairs)."
    )
    assert await page.locator("#model-versions .compare").all_inner_texts() == [
        "weighted 0.620\nmajority 0.598\n(same 150 held-out pairs; labels agree on 94%)",
        "weighted 0.590\nmajority 0.568\n(same 75 held-out pairs; labels agree on 94%)",
    ]
    first_reason = await page.locator("#queue td.reason").first.text_content()
    assert first_reason == "uncertain: p=0.50 (model v3)"
    assert await _contrast_failures(page) == []
    await _full_shot(page, artifacts, "reward-models-1280")
    await page.set_viewport_size(NARROW)
    assert await _fits_width(page)
    await _full_shot(page, artifacts, "reward-models-390")
    browser_log.assert_clean()
