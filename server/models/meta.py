import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base


class AssayMeta(Base):
    """One row about the database itself: who it is, and how its xid stamps relate to the cluster.

    `database_id` is made once, when the schema is created, and travels with every pg_dump, so a
    restored database is the same database to the cursors it issued; another Assay database has
    another id. `xid_offset` is added to the cluster's transaction counter by `assay_xid()`
    (models/xid.py); `settle()` raises it after a restore into a younger cluster.
    """

    __tablename__ = "assay_meta"
    __table_args__ = (CheckConstraint("id", name="one_row"),)

    id: Mapped[bool] = mapped_column(primary_key=True, server_default=text("true"))
    database_id: Mapped[uuid.UUID] = mapped_column(server_default=text("gen_random_uuid()"))
    xid_offset: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    settled_at: Mapped[datetime | None]
