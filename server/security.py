"""Secrets: password hashing, random tokens stored as HMACs, CSRF tokens."""

import hashlib
import hmac
import secrets

from pwdlib import PasswordHash

from server.config import settings

password_hash = PasswordHash.recommended()
# Verified against when the email is unknown, so a login takes as long either way.
DUMMY_HASH = password_hash.hash("assay-timing-dummy")

API_TOKEN_PREFIX = "assay_pat_"
SESSION_TOKEN_PREFIX = "assay_ses_"


def hash_password(password: str) -> str:
    return password_hash.hash(password)


def verify_password(password: str, hashed: str | None) -> bool:
    """Check a password; costs the same when there is no hash to check against."""
    if hashed is None:
        password_hash.verify(password, DUMMY_HASH)
        return False
    return password_hash.verify(password, hashed)


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
