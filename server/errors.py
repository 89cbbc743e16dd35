"""One error hierarchy for the whole app, rendered as JSON under /api.

Input the database refuses (a NUL character, a number beyond its column) is the client's fault
and becomes a 422 even where a schema forgot a bound; no refusal quotes more than a short prefix
of what was sent (`quote`), and no log line carries request values.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from server.db import DatabaseUnreachable

logger = logging.getLogger("assay.errors")
QUOTE_CHARS = 40


class AssayError(Exception):
    status_code = 400

    def __init__(self, message: str, *, status_code: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.extra = extra
        self.headers: dict[str, str] | None = None


class NotFound(AssayError):
    status_code = 404


class Unauthorized(AssayError):
    status_code = 401

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(AssayError):
    status_code = 403


class Conflict(AssayError):
    status_code = 409


class Invalid(AssayError):
    status_code = 422


class TooLarge(AssayError):
    status_code = 413


class TooManyRequests(AssayError):
    """429 with `Retry-After`: the caller must wait `retry_after` seconds (login throttling)."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class Unavailable(AssayError):
    """503 with `Retry-After`: the database cannot be reached for a moment (see `database_unavailable`)."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


RETRY_AFTER_SECONDS = 5
DATABASE_DOWN = "The database is not answering at the moment; please try again in a few seconds."
POOL_BUSY = "The server is too busy to reach the database at the moment; please try again in a few seconds."
# SQLSTATEs that say the connection, not the request, failed: class 08 (connection exception),
# admin/crash shutdown, "cannot connect now" (starting or stopping), too many connections.
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def database_unavailable(exc: BaseException) -> Unavailable | None:
    """The 503 for a database that cannot be reached (down, restarting, pool exhausted), or None.

    A request that gets it was rolled back, or its commit's outcome is unknown when the connection
    broke during the commit: either way a retry is safe (a resent verdict is answered with the stored
    one)."""
    if isinstance(exc, PoolTimeout):
        return Unavailable(POOL_BUSY, retry_after=RETRY_AFTER_SECONDS)
    if isinstance(exc, DatabaseUnreachable):
        return Unavailable(DATABASE_DOWN, retry_after=RETRY_AFTER_SECONDS)
    if isinstance(exc, DBAPIError):
        state = getattr(exc.orig, "sqlstate", None)
        broken = isinstance(state, str) and (state.startswith("08") or state in _UNAVAILABLE_STATES)
        if exc.connection_invalidated or broken:
            return Unavailable(DATABASE_DOWN, retry_after=RETRY_AFTER_SECONDS)
    return None


class FieldError(BaseModel):
    field: str = Field(description="Where the invalid value is: a body field's dotted path, or query/path and a name.")
    message: str
    line: int | None = Field(default=None, description="An upload's record (its line; 0: the whole file).")


class ErrorBody(BaseModel):
    """What every error under /api answers (`render_json`, `validation_json`)."""

    detail: str = Field(description="What is wrong, in a sentence.")
    errors: list[FieldError] | None = Field(
        default=None, description="Each invalid field, when the request failed validation (422)."
    )


# The schema's error responses, with their body (`ErrorBody`): the API router declares
# `API_ERRORS` for every operation; a route adds what only it answers (`error_responses(409)`).
_ERROR_DESCRIPTIONS = {
    400: "The body cannot be parsed (not UTF-8, or a malformed multipart body).",
    401: "No valid session or token (`WWW-Authenticate: Bearer`).",
    403: "Signed in, but the role or token scope does not allow this, or a browser session's write lacks its "
    "CSRF header.",
    404: "The object does not exist, or the caller may not see it.",
    409: "The object's state does not allow this now.",
    413: "The request body is larger than its limit.",
    422: "A value in the request is invalid; the message names it.",
    429: "Too many failed logins; wait the seconds in `Retry-After`.",
    503: "The database cannot take the request now (no connection free, or starting); retry after `Retry-After`.",
}


def error_responses(*status_codes: int, described: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for these error statuses (and those `described` in the route's
    own words), each with the error body."""
    descriptions = {code: _ERROR_DESCRIPTIONS[code] for code in status_codes} | (described or {})
    return {code: {"model": ErrorBody, "description": text} for code, text in descriptions.items()}


API_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 503)


def size_text(size: int) -> str:
    """A byte count in words: 1 MB, 512 MB, 1 GB (binary units, as the limits are set)."""
    for unit, shift in (("GB", 30), ("MB", 20), ("kB", 10)):
        if size >= 1 << shift:
            value = size / (1 << shift)
            return f"{value:,.0f} {unit}" if value.is_integer() else f"{value:,.1f} {unit}"
    return f"{size:,} bytes"


def quote(value: str, limit: int = QUOTE_CHARS) -> str:
    """A value for a message: its repr, cut to its first `limit` characters."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value):,} characters)"


# SQLSTATE of data exceptions (class 22) that only a value the client sent can cause here.
_DATA_MESSAGES = {
    "22021": "The request holds a NUL character (\\u0000) or bytes that are not UTF-8, which cannot be stored; "
    "remove them.",
    "22P05": "The request holds a NUL character (\\u0000), which cannot be stored; remove it.",
    "22003": "A number in the request is out of range.",
    "22001": "A text in the request is longer than its field allows.",
}


def database_refusal(exc: DBAPIError) -> AssayError | None:
    """The 422 for a value the database refused (the input is at fault), or None for any other
    database error (a database that cannot be reached is `database_unavailable`'s 503)."""
    cause = exc.orig.__cause__ if exc.orig is not None else None  # the driver's own exception
    sqlstate = getattr(cause, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith("22"):
        message = _DATA_MESSAGES.get(sqlstate, "A value in the request cannot be stored; check its type and range.")
    elif isinstance(cause, ValueError) and type(cause).__module__.startswith("asyncpg"):
        # asyncpg's client-side DataError: a value that does not fit its parameter (e.g. beyond int32).
        out_of_range = "out of" in str(cause)
        message = _DATA_MESSAGES["22003"] if out_of_range else "A value in the request cannot be stored."
    else:
        return None
    # Name the statement's kind and the SQLSTATE, never the value or the statement's parameters.
    logger.warning("refused input the database cannot store (%s: SQLSTATE %s)", type(cause).__name__, sqlstate)
    return Invalid(message)


def render_json(exc: AssayError) -> JSONResponse:
    return JSONResponse({"detail": exc.message, **exc.extra}, status_code=exc.status_code, headers=exc.headers)


async def _assay_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AssayError)
    return render_json(exc)


def validation_json(exc: RequestValidationError) -> JSONResponse:
    """A 422 naming each invalid field."""
    errors = [{"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]} for e in exc.errors()]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return JSONResponse({"detail": f"Invalid request: {summary}", "errors": errors}, status_code=422)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_json(exc)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    refusal = database_refusal(exc)
    if refusal is None:
        raise exc  # a fault of ours: the unhandled-error middleware logs it and answers 500
    return render_json(refusal)


def install_handlers(app: FastAPI) -> None:
    """Register the JSON renderers; the HTML pages add theirs in the web package."""
    app.add_exception_handler(AssayError, _assay_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DBAPIError, _database_error)
