import uuid
from datetime import datetime

from pydantic import Field

from server.models import Role, UserKind
from server.schemas import Schema


class UserRead(Schema):
    id: uuid.UUID
    email: str
    name: str
    role: Role
    kind: str
    is_active: bool
    created_at: datetime


class UserCreate(Schema):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)
    password: str | None = Field(
        default=None, min_length=8, max_length=200, description="Required for a human; a model has none."
    )
    role: Role
    name: str = Field(default="", max_length=200)
    kind: UserKind = Field(
        default=UserKind.human,
        description="model: a model judge (role rater, no password: it judges through the API with a token).",
    )


class UserUpdate(Schema):
    name: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, min_length=8, max_length=200)
    role: Role | None = None
    is_active: bool | None = None
