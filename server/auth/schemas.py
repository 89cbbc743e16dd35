import uuid
from datetime import datetime

from pydantic import Field

from server.config import settings
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
    expires_in_days: int | None = Field(
        default_factory=lambda: settings.token_days,
        ge=1,
        le=3650,
        description="Days until the token stops working: 90 when left out (the ASSAY_TOKEN_DAYS setting); "
        "null for a token that never expires.",
    )


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


class TokensRevoked(Schema):
    revoked: int = Field(description="How many live tokens were revoked.")
