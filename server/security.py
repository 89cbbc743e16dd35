"""Secrets: password hashing, random tokens stored as HMACs, CSRF tokens.

Argon2 takes tens of milliseconds of CPU by design, so hashing and verifying run in a small
thread pool of their own (argon2-cffi releases the GIL): the event loop keeps serving other
requests while a login is checked, and at most `HASH_THREADS` passwords are hashed at once per
process, so a burst of logins queues instead of taking every core.
"""

import asyncio
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor

from pwdlib import PasswordHash

from server.config import settings

password_hash = PasswordHash.recommended()
# Verified against when the email is unknown, so a login takes as long either way.
DUMMY_HASH = password_hash.hash("assay-timing-dummy")
HASH_THREADS = 2
_hashing = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="argon2")

API_TOKEN_PREFIX = "assay_pat_"
SESSION_TOKEN_PREFIX = "assay_ses_"


def _verify(password: str, hashed: str | None) -> bool:
    if hashed is None:
        password_hash.verify(password, DUMMY_HASH)
        return False
    return password_hash.verify(password, hashed)


async def hash_password(password: str) -> str:
    """The Argon2 hash of a password, computed off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_hashing, password_hash.hash, password)


async def verify_password(password: str, hashed: str | None) -> bool:
    """Check a password off the event loop; costs the same when there is no hash to check against."""
    return await asyncio.get_running_loop().run_in_executor(_hashing, _verify, password, hashed)


def generate_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """HMAC-SHA256 of a token under the server secret; what the database stores."""
    return hmac.new(settings.secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()


def csrf_token_for(session_token: str) -> str:
    """The CSRF token bound to one browser session (no server-side state needed)."""
    return hmac.new(settings.secret_key.encode(), b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token_for(session_token), presented)
