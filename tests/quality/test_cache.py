"""Quality figures are computed once per data version; a slow one is answered stale while it is refreshed."""

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.labeling import queue
from server.models import Role
from server.quality import cache
from server.quality.cache import cached, data_version, refreshes_done
from tests.factories import create_judgment, create_project, create_user, import_items, native_items


async def test_a_figure_is_recomputed_only_when_the_data_changes(session: AsyncSession) -> None:
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,), overlap=1)
    await import_items(session, project, admin, native_items(3))
    calls: list[str] = []

    async def compute(own: AsyncSession) -> dict[str, Any]:
        calls.append(await data_version(own, project.id))
        return {"judgments": len(calls)}

    first = await cached(session, project.id, "test", compute)
    again = await cached(session, project.id, "test", compute)
    assert (first.payload, again.payload) == ({"judgments": 1}, {"judgments": 1})
    assert again.version == first.version
    assert again.current
    await session.commit()

    await create_judgment(session, project, rater)  # a new judgment: a new xid
    after_judgment = await cached(session, project.id, "test", compute)
    assert after_judgment.payload == {"judgments": 2}  # cheap to compute: computed in the request
    assert after_judgment.version != first.version
    await session.commit()

    await queue.lock_for_reorder(session, project.id)  # an import, a deleted batch, a new overlap
    await session.commit()
    after_reorder = await cached(session, project.id, "test", compute)
    assert after_reorder.payload == {"judgments": 3}
    assert after_reorder.version not in (first.version, after_judgment.version)
    assert len(set(calls)) == 3


async def test_a_slow_figure_is_answered_stale_and_refreshed_in_the_background(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "SYNC_SECONDS", -1.0)  # every figure counts as slow
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,), overlap=1)
    await import_items(session, project, admin, native_items(3))
    counted: list[int] = []

    async def compute(own: AsyncSession) -> dict[str, Any]:
        version = await data_version(own, project.id)
        counted.append(1)
        return {"version": version}

    first = await cached(session, project.id, "slow", compute)  # never computed: computed now
    await session.commit()
    await create_judgment(session, project, rater)

    stale = await cached(session, project.id, "slow", compute)
    assert stale.payload == {"version": first.version}
    assert not stale.current
    await session.commit()
    await refreshes_done()
    refreshed = await cached(session, project.id, "slow", compute)
    assert refreshed.current
    assert refreshed.payload == {"version": refreshed.version} != stale.payload
    assert refreshed.computed_at > stale.computed_at

    await create_judgment(session, project, rater)
    asked_fresh = await cached(session, project.id, "slow", compute, fresh=True)
    assert asked_fresh.current
    assert len(counted) == 3


async def test_a_page_gets_a_first_figure_from_the_background_or_is_told_it_is_computing(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await create_user(session, role=Role.admin)
    project = await create_project(session, admin, overlap=1)
    await import_items(session, project, admin, native_items(2))
    await session.commit()

    async def compute(own: AsyncSession) -> dict[str, Any]:
        return {"version": await data_version(own, project.id)}

    monkeypatch.setattr(cache, "FIRST_WAIT_SECONDS", 0.0)  # the background computation cannot be ready in time
    with pytest.raises(cache.Computing):
        await cached(session, project.id, "first", compute, page=True)
    await refreshes_done()
    stored = await cached(session, project.id, "first", compute, page=True)
    assert stored.current
    assert stored.payload == {"version": stored.version}

    monkeypatch.setattr(cache, "FIRST_WAIT_SECONDS", 30.0)  # ready in time: the page gets it at once
    waited = await cached(session, project.id, "other", compute, page=True)
    assert waited.current
    assert waited.payload == stored.payload
    # The API and exports compute a first figure in the request, however long it takes.
    assert (await cached(session, project.id, "api", compute)).payload == stored.payload
