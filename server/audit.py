"""The audit log of admin actions: one function, called by services that change things."""

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.models import AuditEvent, User


def record(
    session: AsyncSession,
    *,
    actor: User | None,
    action: str,
    target_type: str,
    target_id: uuid.UUID | None,
    project_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            actor_id=actor.id if actor else None,
            action=action,
            target_type=target_type,
            target_id=target_id,
            project_id=project_id,
            data=data or {},
        )
    )
