"""Errors as HTML for the pages: a full error page, or for htmx a message swapped into #flash.

Requests under /api keep the JSON renderer; everything else a browser sees gets HTML. An error
nothing handles is answered here too (`UnhandledErrors`): a 500 naming an error id, and one log
record with the exception types and frames but no message, since messages quote request values.
"""

import logging
import traceback
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import AssayError, database_refusal, render_json, validation_json
from server.web.deps import LoginRequired
from server.web.templating import is_htmx, render

logger = logging.getLogger("assay.errors")

TITLES = {
    400: "Something is wrong with this request",
    401: "Please log in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "That cannot be done now",
    413: "Too large",
    422: "Please check what you entered",
    503: "Busy: try again shortly",
}


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def render_error(request: Request, status_code: int, message: str) -> Response:
    """The error page, or (htmx) the message as a toast in #flash, with the same status code."""
    context = {"status_code": status_code, "title": TITLES.get(status_code, "Something went wrong"), "message": message}
    if is_htmx(request):
        headers = {"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"}
        return render(request, "errors/error.html", context, status_code=status_code, block="toast", headers=headers)
    return render(request, "errors/error.html", context, status_code=status_code)


async def _assay_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AssayError)
    if is_api(request):
        return render_json(exc)
    return render_error(request, exc.status_code, exc.message)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    response: JSONResponse = validation_json(exc)
    if is_api(request):
        return response
    fields = ", ".join(sorted({str(e["loc"][-1]) for e in exc.errors()}))
    return render_error(request, 422, f"The request was missing or had an invalid value for: {fields}.")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if is_api(request):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    message = "There is no page at this address." if exc.status_code == 404 else str(exc.detail)
    return render_error(request, exc.status_code, message)


async def _database_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DBAPIError)
    refusal = database_refusal(exc)
    if refusal is None:
        raise exc  # a fault of ours: the unhandled-error middleware logs it and answers 500
    return await _assay_error(request, refusal)


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if is_htmx(request):
        # htmx follows HX-Redirect with a full page load, whatever the status.
        return Response(status_code=401, headers={"HX-Redirect": exc.login_url})
    return RedirectResponse(exc.login_url, status_code=303)


def scrubbed_traceback(exc: BaseException) -> str:
    """The traceback of `exc` and its causes: types and frames (file, line, code), never a message."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = "".join(traceback.extract_tb(current.__traceback__).format())
        parts.append(f"{type(current).__module__}.{type(current).__qualname__} (message withheld)\n{frames}")
        current = current.__cause__ or current.__context__
    return "\nwhile handling it, or caused by:\n".join(parts)


def _server_error(request: Request, message: str) -> Response:
    if is_api(request):
        return JSONResponse({"detail": message}, status_code=500)
    try:
        return render_error(request, 500, message)
    except Exception:  # the error page itself failed: plain text still tells the user
        return PlainTextResponse(message, status_code=500)


class UnhandledErrors:
    """Answer an exception nothing handled with a 500 and log it without request values.

    Added as the outermost middleware, inside Starlette's own, which would log the message."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            error_id = uuid.uuid4().hex[:12]
            logger.error(
                "unhandled error %s on %s %s\n%s", error_id, scope["method"], scope["path"], scrubbed_traceback(exc)
            )
            if started:
                return  # the response is under way: all that is left is to end it
            message = (
                f"Something went wrong on our side (error {error_id}). "
                "Try again, and tell an admin if it keeps happening."
            )
            await _server_error(Request(scope), message)(scope, receive, send)


def install_page_handlers(app: FastAPI) -> None:
    """Replace the JSON-only handlers with ones that answer browsers in HTML and /api in JSON."""
    app.add_exception_handler(AssayError, _assay_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(LoginRequired, _login_required)
