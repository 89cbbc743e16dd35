"""HTML forms on top of the API's Pydantic schemas: one set of rules, messages in words per field.

A page posts its fields; `validate()` runs the same schema the JSON API uses and turns each
Pydantic error into a sentence under the field it concerns ("Overlap must be at least 1."),
so the admin pages and the API can never disagree about what is valid.
"""

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.datastructures import FormData

from server.web.templating import flash, is_htmx

M = TypeVar("M", bound=BaseModel)
FORM_ERROR = "__form__"  # the key of an error about the whole form rather than one field


async def read_form(request: Request) -> FormData:
    """The posted form (already parsed and cached if the CSRF check read it)."""
    return await request.form()


def text_fields(form: FormData, names: Iterable[str]) -> dict[str, str]:
    """The named single-value fields, as typed (missing ones are left out)."""
    return {name: str(form[name]) for name in names if isinstance(form.get(name), str)}


def checkbox(form: FormData, name: str) -> bool:
    """An HTML checkbox is sent only when ticked."""
    return name in form


def _expected(ctx: Mapping[str, Any]) -> str:
    return str(ctx.get("expected", "")).replace("'", "")


def message_for(error: ErrorDetails, label: str) -> str:
    """One Pydantic error as a sentence about the field called `label`."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return f"{label} is required."
    sentences = {
        "string_too_short": f"{label} must be at least {ctx.get('min_length')} characters.",
        "string_too_long": f"{label} must be at most {ctx.get('max_length'):,} characters."
        if isinstance(ctx.get("max_length"), int)
        else f"{label} is too long.",
        "greater_than_equal": f"{label} must be at least {ctx.get('ge')}.",
        "less_than_equal": f"{label} must be at most {ctx.get('le')}.",
        "int_parsing": f"{label} must be a whole number.",
        "int_from_float": f"{label} must be a whole number.",
        "float_parsing": f"{label} must be a number.",
        "finite_number": f"{label} must be a finite number.",
        "no_nul": f"{label} must not contain a NUL character.",
        "enum": f"{label} must be one of {_expected(ctx)}.",
        "literal_error": f"{label} must be one of {_expected(ctx)}.",
        "bool_parsing": f"{label} must be yes or no.",
        "group": f"{label} {error['msg']}.",
        "too_short": f"Choose at least {ctx.get('min_length')} {label.lower()}.",
    }
    return sentences.get(kind, f"{label}: {error['msg']}.")


def validate(
    schema: type[M],
    data: Mapping[str, Any],
    labels: Mapping[str, str],
    messages: Mapping[tuple[str, str], str] | None = None,
) -> tuple[M | None, dict[str, str]]:
    """The schema built from `data`, or None and one message per field (the first error of each).

    `messages` overrides the sentence for a (field, error type), e.g. a pattern that means "an email";
    it may name the error's limits, as in "at least {ge} seconds".
    """
    try:
        return schema.model_validate(data), {}
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else FORM_ERROR
            if field in errors:
                continue
            override = (messages or {}).get((field, error["type"]))
            if override is not None:
                errors[field] = override.format(**(error.get("ctx") or {}))
            else:
                errors[field] = message_for(error, labels.get(field, field.replace("_", " ").capitalize()))
        return None, errors


def done(request: Request, url: str, message: str | None = None) -> Response:
    """After a write: go to `url` (htmx: `HX-Redirect`, else 303) and show `message` there."""
    response: Response
    if is_htmx(request):
        response = Response(status_code=200, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if message:
        flash(response, message, kind="success")
    return response
