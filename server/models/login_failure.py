from datetime import datetime

from sqlalchemy import BigInteger, Identity, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base


class LoginFailure(Base):
    """One wrong password, counted against the account typed and the address it came from.

    Append-only: recording a failure is one INSERT that locks nothing another login needs, and
    counting is a short range scan of one index, (email, failed_at) or (address, failed_at),
    stopped after the limit's row. Rows older than the window are deleted as failures come in.
    """

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_email_failed_at", "email", "failed_at"),
        Index("ix_login_failures_address_failed_at", "address", "failed_at"),
        Index("ix_login_failures_failed_at", "failed_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The email as typed, lower-cased: unknown emails are counted the same way as real accounts,
    # so the throttle does not tell which accounts exist.
    email: Mapped[str] = mapped_column(String(320))
    # The client's IP address (an IPv6 client's /64 network), see server/auth/throttle.py.
    address: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(server_default=func.now())
