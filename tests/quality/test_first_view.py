"""A page's first view of a quality figure: computed in the background, the page says so and asks again.

At a million judgments the first computation of the agreement and rater figures takes seconds
(docs/BENCHMARKS.md); a page must not wait for it. The test makes every background computation
too slow to wait for (FIRST_WAIT_SECONDS = 0), so the placeholder shows on every page that reads a
figure, then lets the computations finish and reads the figures.
"""

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import QualitySnapshot, Role
from server.quality import cache
from server.quality.cache import refreshes_done
from tests.factories import create_judgment, create_project, create_user, import_items, native_items
from tests.web.admin import login_as
from tests.web.html import parse

PLACEHOLDER = "for the first time: on a large project this takes up to a minute."


async def test_every_quality_page_shows_a_placeholder_that_fills_in(
    client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, _ = await login_as(client, session)
    rater = await create_user(session, role=Role.rater)
    project = await create_project(session, admin, members=(rater,), overlap=1)
    await import_items(session, project, admin, native_items(3))
    await create_judgment(session, project, rater)
    await session.commit()
    monkeypatch.setattr(cache, "FIRST_WAIT_SECONDS", 0.0)
    pages = {
        f"/admin/projects/{project.id}/quality?sort=judgments": ("quality-body", "Computing the quality figures"),
        f"/admin/projects/{project.id}": ("agreement", "Computing the agreement between raters"),
        f"/admin/projects/{project.id}/raters/{rater.id}": ("quality", "Computing this rater's quality figures"),
        f"/admin/projects/{project.id}/leaderboard": ("leaderboard-body", "Computing the leaderboard"),
    }
    for url, (part, words) in pages.items():
        # The quality, overview and rater pages share one figure: each starts from none.
        await session.execute(delete(QualitySnapshot).where(QualitySnapshot.project_id == project.id))
        await session.commit()
        response = await client.get(url)
        assert response.status_code == 200, response.text
        placeholder = parse(response.text).by_id(part)
        assert f"{words} {PLACEHOLDER}" in " ".join(placeholder.text.split()), url
        # It asks for the same page again and swaps in its own part of it.
        assert placeholder["hx-get"] == url
        assert placeholder["hx-select"] == f"#{part}"
        assert placeholder["hx-trigger"] == "load delay:2s"

        await refreshes_done()
        response = await client.get(url)
        assert response.status_code == 200, response.text
        assert PLACEHOLDER not in response.text, url
        assert "computing" not in parse(response.text).by_id(part).get("class", []), url
    monkeypatch.setattr(cache, "FIRST_WAIT_SECONDS", None)  # waits for the figures: the table itself
    quality = parse((await client.get(f"/admin/projects/{project.id}/quality")).text)
    assert quality.by_id("rater-quality") is not None
