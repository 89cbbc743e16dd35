import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base


class QualitySnapshot(Base):
    """A computed quality figure (agreement, leaderboard, ...) for one version of a project's data.

    server/quality/cache.py reads it while the data version is unchanged and recomputes it
    otherwise, so a page does not redo a bootstrap over a million judgments on every view.
    """

    __tablename__ = "quality_snapshots"

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # e.g. "agreement", "leaderboard"
    data_version: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    seconds: Mapped[float]  # how long the computation took
    computed_at: Mapped[datetime] = mapped_column(server_default=func.now())
