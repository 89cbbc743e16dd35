"""Errors as HTML for the pages: a full error page, or for htmx a message swapped into #flash.

Requests under /api keep the JSON renderer; everything else a browser sees gets HTML.
"""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.errors import AssayError, render_json, validation_json
from server.web.deps import LoginRequired
from server.web.templating import is_htmx, render

TITLES = {
    400: "Something is wrong with this request",
    401: "Please log in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "That cannot be done now",
    413: "Too large",
    422: "Please check what you entered",
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


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if is_htmx(request):
        # htmx follows HX-Redirect with a full page load, whatever the status.
        return Response(status_code=401, headers={"HX-Redirect": exc.login_url})
    return RedirectResponse(exc.login_url, status_code=303)


def install_page_handlers(app: FastAPI) -> None:
    """Replace the JSON-only handlers with ones that answer browsers in HTML and /api in JSON."""
    app.add_exception_handler(AssayError, _assay_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(LoginRequired, _login_required)
