"""One error hierarchy for the whole app, rendered as JSON under /api."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


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


def install_handlers(app: FastAPI) -> None:
    """Register the JSON renderers; the HTML pages add theirs in the web package."""
    app.add_exception_handler(AssayError, _assay_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
