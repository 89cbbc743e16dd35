"""Login throttling: wrong passwords counted per account and per client address, in PostgreSQL.

Several server processes share the counts and PostgreSQL is the only store, so each wrong
password is one row of `login_failures` (server/models/login_failure.py). The rules:

- A login is refused (429 with `Retry-After`) while the email typed has
  `login_failures_per_account` failures in the last `login_window_minutes`, or the client address
  has `login_failures_per_address`. The password is then not checked at all, so a refused attempt
  costs no Argon2 time and adds no row: an attacker's rows per account and address stay bounded.
- The refusal ends when the oldest of those failures leaves the window (sliding window).
- A successful login forgets the account's failures, never the address's: logging into one's
  own account must not wipe the count of guesses made at other accounts.

Nothing here waits for a lock held by another login: a failure is an INSERT, counting reads an
index range, and the rows deleted (expired ones, or the account's after a success) are taken
with SKIP LOCKED.
"""

import ipaddress
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import Request
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from server.config import settings
from server.errors import TooManyRequests
from server.models import LoginFailure

PURGE_BATCH = 100  # expired rows deleted per recorded failure; keeps the table to about one window


def client_address(request: Request) -> str:
    """The client's address as the throttle counts it: the connection's peer (or, behind a trusted
    proxy, what it forwarded; see server/app.py); an IPv6 client counts as its /64 network, the
    block one subscriber usually holds."""
    host = request.client.host if request.client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def account_key(email: str) -> str:
    return email.strip().lower()[:320]


@dataclass(frozen=True, slots=True)
class _Rule:
    column: InstrumentedAttribute[str]
    limit: int
    refusal: str


def _window() -> timedelta:
    return timedelta(minutes=settings.login_window_minutes)


def _in_words(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


async def _blocked_until(session: AsyncSession, rule: _Rule, key: str) -> datetime | None:
    """When the key's `limit`-th most recent failure leaves the window, if it has that many."""
    nth = await session.scalar(
        select(LoginFailure.failed_at)
        .where(rule.column == key, LoginFailure.failed_at > func.now() - _window())
        .order_by(LoginFailure.failed_at.desc())
        .offset(rule.limit - 1)
        .limit(1)
    )
    return None if nth is None else nth + _window()


async def check(session: AsyncSession, *, email: str, address: str) -> None:
    """Refuse (429) a login for this account or from this address while either is throttled."""
    rules = (
        (_Rule(LoginFailure.email, settings.login_failures_per_account, "for this account"), account_key(email)),
        (_Rule(LoginFailure.address, settings.login_failures_per_address, "from your network address"), address),
    )
    for rule, key in rules:
        until = await _blocked_until(session, rule, key)
        if until is not None:
            seconds = max(1, math.ceil((until - datetime.now(UTC)).total_seconds()))
            raise TooManyRequests(
                f"Too many failed logins {rule.refusal}; try again in {_in_words(seconds)}.", retry_after=seconds
            )


async def record_failure(session: AsyncSession, *, email: str, address: str) -> None:
    """Count one wrong password, and delete a few failures that have left the window."""
    session.add(LoginFailure(email=account_key(email), address=address))
    expired = (
        select(LoginFailure.id)
        .where(LoginFailure.failed_at < func.now() - _window())
        .order_by(LoginFailure.failed_at)
        .limit(PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
    await session.execute(delete(LoginFailure).where(LoginFailure.id.in_(expired)))
    await session.flush()


async def forget_account(session: AsyncSession, email: str) -> None:
    """After a successful login: the account's failures no longer count."""
    mine = select(LoginFailure.id).where(LoginFailure.email == account_key(email)).with_for_update(skip_locked=True)
    await session.execute(delete(LoginFailure).where(LoginFailure.id.in_(mine)))
