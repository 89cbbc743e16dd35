"""What an admin or model change does to the serving order, in one place.

Changes that can move items ahead in the serving order (an import, a batch resumed or
reprioritised, a new overlap, active-learning priorities) first lock the project row and count
up its `queue_epoch`. The lock is the first in the lock order (docs/ARCHITECTURE.md), so such
changes queue behind each other per project (two imports of overlapping ids can no longer
deadlock) while raters, who never lock the project row, go on. The new epoch tells every
rater's next pick to walk the serving order from the start once instead of resuming after the
last item it gave them (labeling/service.py).
"""

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import NotFound

# A deleted project (projects/lifecycle.py) is never changed again: no row, no lock.
_LOCK_AND_BUMP = text(
    "UPDATE projects SET queue_epoch = queue_epoch + 1 WHERE id = :project_id AND deleted_at IS NULL"
    " RETURNING overlap, queue_epoch"
)


async def lock_for_reorder(session: AsyncSession, project_id: uuid.UUID) -> int:
    """Lock the project row (FOR NO KEY UPDATE, through the UPDATE) and start a new queue epoch.

    Returns the project's overlap as committed now: after waiting for the lock, this is the value
    a concurrent settings change left, so new items get the overlap that is really in force.
    """
    row = (await session.execute(_LOCK_AND_BUMP, {"project_id": project_id})).one_or_none()
    if row is None:  # deleted while this request waited for the lock
        raise NotFound(f"Project {project_id} was deleted; nothing was changed.")
    return int(row.overlap)
