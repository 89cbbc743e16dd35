"""Quality figures are computed once per data version and recomputed when the data changes."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.labeling import queue
from server.models import Role
from server.quality.cache import cached, data_version
from tests.factories import create_judgment, create_project, create_user, import_items, native_items


async def test_a_figure_is_recomputed_only_when_the_data_changes(session: AsyncSession) -> None:
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    project = await create_project(session, admin, members=(rater,), overlap=1)
    await import_items(session, project, admin, native_items(3))
    calls: list[str] = []

    async def compute() -> dict[str, Any]:
        calls.append(await data_version(session, project.id))
        return {"judgments": len(calls)}

    first, version = await cached(session, project.id, "test", compute)
    again, same = await cached(session, project.id, "test", compute)
    assert (first, again, same) == ({"judgments": 1}, {"judgments": 1}, version)
    await session.commit()

    await create_judgment(session, project, rater)  # a new judgment: a new xid
    after_judgment, newer = await cached(session, project.id, "test", compute)
    assert after_judgment == {"judgments": 2}
    assert newer != version
    await session.commit()

    await queue.lock_for_reorder(session, project.id)  # an import, a deleted batch, a new overlap
    await session.commit()
    after_reorder, newest = await cached(session, project.id, "test", compute)
    assert after_reorder == {"judgments": 3}
    assert newest not in (version, newer)
    assert len(set(calls)) == 3
