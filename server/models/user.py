import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base, IdMixin, TimestampMixin


class Role(enum.StrEnum):
    admin = "admin"
    rater = "rater"
    trainer = "trainer"


class UserKind(enum.StrEnum):
    human = "human"
    model = "model"  # a model judge labeling through the same API (later issue)


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        CheckConstraint("role IN ('admin', 'rater', 'trainer')", name="role"),
        CheckConstraint("kind IN ('human', 'model')", name="kind"),
    )

    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16), default=UserKind.human, server_default="human")
    password_hash: Mapped[str | None]
    is_active: Mapped[bool] = mapped_column(default=True, server_default="true")
    # Set by quality control (later issue) when a rater falls below a threshold.
    suspended_at: Mapped[datetime | None]


class UserSession(IdMixin, Base):
    """A browser session: the cookie holds a random secret, the table its HMAC."""

    __tablename__ = "user_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    # The last request made with it, written at most once a minute (server/auth/activity.py); a
    # session idle for longer than `session_idle_hours` is refused.
    last_seen_at: Mapped[datetime] = mapped_column(server_default=func.now())

    user: Mapped[User] = relationship(lazy="raise")
