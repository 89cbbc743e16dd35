"""Settings: one object, read from the environment with the ASSAY_ prefix."""

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "assay-dev-secret-change-me"
MIN_SECRET_LENGTH = 32


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
    # Faults (docs/ARCHITECTURE.md "Faults"): a request that cannot get a connection within these
    # seconds is answered 503 with Retry-After instead of waiting; a pooled connection that sat
    # idle for more than `db_pool_ping_idle_seconds` is checked before use (a ping: one round trip;
    # 0 checks every checkout), so the pool recovers by itself after the database restarts.
    db_connect_timeout: float = Field(default=3, gt=0, le=60)
    db_pool_timeout: float = Field(default=10, gt=0, le=300)
    db_pool_pre_ping: bool = True
    db_pool_ping_idle_seconds: float = Field(default=1.0, ge=0, le=3600)

    # Browser sessions: refused after `session_days` in all, or after `session_idle_hours` without
    # a request (a rater page's heartbeat is a request). Cookies are Secure in production unless
    # `cookie_secure` says otherwise.
    session_cookie: str = "assay_session"
    session_days: int = Field(default=14, ge=1)
    session_idle_hours: float = Field(default=8, gt=0)
    cookie_secure: bool | None = None

    # Logins: refused for a while after this many wrong passwords within the window, per account
    # (the email typed) and per client address.
    login_window_minutes: int = Field(default=15, ge=1)
    login_failures_per_account: int = Field(default=10, ge=1)
    login_failures_per_address: int = Field(default=50, ge=1)
    # Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For and
    # X-Forwarded-Proto are believed; empty: the client is whoever opened the connection.
    trusted_proxies: str = ""

    # API tokens expire after this many days unless the admin chooses otherwise.
    token_days: int = Field(default=90, ge=1, le=3650)

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

    # Exports (README, "Export limits"): they hold a connection of their own pool while the client
    # reads, so a slow download never takes one from raters. At most `export_pool_size` exports per
    # server process at once, `exports_per_principal` per token or browser session, and a client
    # that accepts no bytes for `export_send_timeout_seconds` is cut off (status aborted).
    export_pool_size: int = Field(default=4, ge=1, le=100)
    exports_per_principal: int = Field(default=2, ge=1, le=100)
    export_send_timeout_seconds: float = Field(default=60, gt=0, le=3600)

    # Labeling
    reclaim_batch: int = 100  # expired leases freed per `next` call; bounds its cost

    @property
    def secure_cookies(self) -> bool:
        """Whether cookies carry `Secure`: always in production, unless ASSAY_COOKIE_SECURE says otherwise."""
        return self.environment == "production" if self.cookie_secure is None else self.cookie_secure

    @model_validator(mode="after")
    def _refuse_weak_secret(self) -> "Settings":
        if self.environment != "production":
            return self
        how = "set a long random value (python -c 'import secrets; print(secrets.token_urlsafe(48))')."
        if self.secret_key == DEV_SECRET:
            raise ValueError(f"ASSAY_SECRET_KEY is still the public development default; {how}")
        if len(self.secret_key) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"ASSAY_SECRET_KEY has {len(self.secret_key)} characters; production needs at least "
                f"{MIN_SECRET_LENGTH}: {how}"
            )
        return self


settings = Settings()
