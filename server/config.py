"""Settings: one object, read from the environment with the ASSAY_ prefix."""

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "assay-dev-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSAY_", env_file=".env", extra="ignore")

    # Deployment
    environment: Literal["development", "test", "production"] = "development"
    secret_key: str = DEV_SECRET
    data_dir: Path = Path(".assay")

    # Database: DATABASE_URL (no prefix, the common convention) wins; without it the
    # embedded PostgreSQL in data_dir is started.
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    db_pool_size: int = 10
    db_max_overflow: int = 10

    # Browser sessions
    session_cookie: str = "assay_session"
    session_days: int = 14
    cookie_secure: bool = False

    # Request bodies (the README's settings table says why these values): every request but an
    # upload, an upload file as sent, and an upload sent as JSON ({"items": [...]}, parsed whole).
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_upload_bytes: int = Field(default=512 << 20, ge=1024)
    max_json_upload_bytes: int = Field(default=8 << 20, ge=1024)

    # What an upload may expand to, checked while it streams.
    upload_max_decompressed_bytes: int = Field(default=1 << 30, ge=1024)
    upload_max_line_bytes: int = Field(default=4 << 20, ge=1024)  # a JSONL line, CSV row or Parquet row
    upload_max_text_chars: int = Field(default=100_000, ge=1)  # a prompt's or a candidate's text
    upload_max_messages: int = Field(default=1000, ge=1)  # chat messages in a prompt or a candidate
    upload_max_candidates: int = Field(default=16, ge=2)
    upload_max_items: int = Field(default=200_000, ge=1)
    upload_max_parquet_row_group_bytes: int = Field(default=256 << 20, ge=1024)  # uncompressed, per row group

    # Labeling
    reclaim_batch: int = 100  # expired leases freed per `next` call; bounds its cost

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> "Settings":
        if self.environment == "production" and self.secret_key == DEV_SECRET:
            raise ValueError(
                "ASSAY_SECRET_KEY is still the development default; set a long random value "
                "(python -c 'import secrets; print(secrets.token_urlsafe(48))')."
            )
        return self


settings = Settings()
