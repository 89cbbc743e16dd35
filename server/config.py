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

    # Uploads
    max_upload_bytes: int = 512 * 1024 * 1024

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
