"""The upload abuse corpus against a real server process: every file refused with a 4xx, nothing
imported, and the server's peak memory during the request bounded.

The bound is generous (the limits let a refused upload hold a line, a 16 MB Parquet slice and a
chunk of rows); before the limits the same files raised the server's memory by 0.5 to 2+ GB
(`python -m tests.security.corpus` prints the figures for any checkout).
"""

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Batch, Item, Role
from tests.factories import create_project, create_token, create_user
from tests.security.corpus import CORPUS, Abuse, send, warm_up
from tests.security.server import MB, ServerProcess, start_server

PEAK_GROWTH_BOUND = 150 * MB


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[ServerProcess]:
    """The app in its own process on the test database."""
    process = start_server(database_url)
    yield process
    process.stop()


async def count(session: AsyncSession, model: type) -> int:
    return await session.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.parametrize("abuse", CORPUS, ids=[a.name for a in CORPUS])
async def test_refused_with_bounded_memory(server: ServerProcess, session: AsyncSession, abuse: Abuse) -> None:
    admin = await create_user(session, role=Role.admin)
    project = await create_project(session, admin)
    token = await create_token(session, admin)
    # pyarrow and the parsers load on the first upload of each kind: not the abuse's doing.
    await asyncio.to_thread(warm_up, server, token, str(project.id))
    before = (await count(session, Item), await count(session, Batch))
    content = await asyncio.to_thread(abuse.build)
    result = await asyncio.to_thread(send, server, token, str(project.id), abuse, content)
    assert result.status == abuse.status, result.detail
    assert result.detail.startswith("The file was refused: ")
    assert result.growth < PEAK_GROWTH_BOUND, f"the server's peak memory grew by {result.growth / MB:.0f} MB"
    assert (await count(session, Item), await count(session, Batch)) == before
