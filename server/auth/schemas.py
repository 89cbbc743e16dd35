import uuid
from datetime import datetime

from pydantic import Field

from server.models import Scope
from server.schemas import Schema
from server.users.schemas import UserRead


class LoginRequest(Schema):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1000)


class SessionRead(Schema):
    user: UserRead
    csrf_token: str


class TokenCreate(Schema):
    name: str = Field(default="", max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenRead(Schema):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class TokenCreated(TokenRead):
    token: str = Field(description="The secret; shown this once, store it now.")
