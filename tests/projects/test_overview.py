"""The project overview's statistics: judgments per hour and per-rater counts and median time."""

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Role
from server.projects import service
from tests.factories import create_judgment, create_project, create_user, import_items, native_items

NOW = datetime(2026, 11, 23, 15, 40, tzinfo=UTC)


async def _project_with_raters(session: AsyncSession, prefix: str = "rater", n_raters: int = 2):  # type: ignore[no-untyped-def]
    admin = await create_user(session, role=Role.admin)
    raters = [await create_user(session, email=f"{prefix}{i}@example.com") for i in range(n_raters)]
    project = await create_project(session, admin, members=tuple(raters), overlap=n_raters)
    await import_items(session, project, admin, native_items(10))
    return project, raters


class TestThroughput:
    async def test_counts_per_hour_with_empty_hours(self, session: AsyncSession) -> None:
        project, (ana, bo) = await _project_with_raters(session)
        await create_judgment(session, project, ana, at=NOW - timedelta(minutes=5))
        await create_judgment(session, project, bo, at=NOW - timedelta(minutes=39))
        await create_judgment(session, project, ana, at=NOW - timedelta(hours=2, minutes=1))
        await create_judgment(session, project, ana, at=NOW - timedelta(hours=5))  # outside a 4-hour window
        hours = await service.throughput(session, project, hours=4, now=NOW)
        assert [(h.hour.hour, h.judgments) for h in hours] == [(12, 0), (13, 1), (14, 0), (15, 2)]
        assert all(h.hour.tzinfo is not None and h.hour.utcoffset() == timedelta(0) for h in hours)

    async def test_other_projects_do_not_count(self, session: AsyncSession) -> None:
        project, _ = await _project_with_raters(session)
        other, (cy, _) = await _project_with_raters(session, prefix="other")
        await create_judgment(session, other, cy, at=NOW)
        hours = await service.throughput(session, project, hours=2, now=NOW)
        assert [h.judgments for h in hours] == [0, 0]


class TestRaterStats:
    async def test_counts_and_median_active_time(self, session: AsyncSession) -> None:
        project, (ana, bo) = await _project_with_raters(session)
        for ms in (1000, 3000, 8000):
            await create_judgment(session, project, ana, active_ms=ms, at=NOW - timedelta(hours=1))
        await create_judgment(session, project, bo, active_ms=4000, at=NOW - timedelta(hours=1))
        await create_judgment(session, project, bo, active_ms=None, at=NOW - timedelta(hours=1))
        stats = await service.rater_stats(session, project, since=NOW - timedelta(days=1))
        assert [(s.email, s.judgments, s.median_active_ms) for s in stats] == [
            ("rater0@example.com", 3, 3000.0),
            ("rater1@example.com", 2, 4000.0),
        ]

    async def test_window_excludes_older_judgments(self, session: AsyncSession) -> None:
        project, (ana, bo) = await _project_with_raters(session)
        await create_judgment(session, project, ana, at=NOW - timedelta(days=3))
        await create_judgment(session, project, bo, at=NOW - timedelta(hours=2))
        stats = await service.rater_stats(session, project, since=NOW - timedelta(days=1))
        assert [(s.email, s.judgments, s.last_judged_at) for s in stats] == [
            ("rater1@example.com", 1, NOW - timedelta(hours=2))
        ]

    async def test_no_judgments_no_rows(self, session: AsyncSession) -> None:
        project, _ = await _project_with_raters(session)
        assert await service.rater_stats(session, project, since=NOW - timedelta(days=1)) == []
