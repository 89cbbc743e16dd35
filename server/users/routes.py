"""Admin pages for accounts and their API tokens: create, reset password, (de)activate, tokens."""

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.auth import service as auth
from server.auth.schemas import TokenCreate
from server.config import settings
from server.db import SessionDep
from server.errors import Conflict, Invalid
from server.models import Role, User
from server.projects import service as projects
from server.users import service
from server.users.schemas import UserCreate, UserUpdate
from server.web.deps import AdminPagePrincipal
from server.web.forms import FORM_ERROR, checkbox, done, read_form, text_fields, validate
from server.web.templating import is_htmx, render

router = APIRouter(prefix="/admin", include_in_schema=False)

USER_LABELS = {"email": "Email", "password": "Password", "role": "Role", "name": "Name", "kind": "Kind"}
TOKEN_LABELS = {"name": "Name", "scopes": "Scopes", "expires_in_days": "Expiry in days"}
USER_MESSAGES = {("email", "string_pattern_mismatch"): "Email must be an address like ana@example.com."}
TOKEN_MESSAGES = {("scopes", "too_short"): "Choose at least one scope."}


async def _list_page(
    request: Request, session: SessionDep, *, values: dict[str, str], errors: dict[str, str], status_code: int = 200
) -> Response:
    context = {"users": await service.list_users(session), "roles": list(Role), "values": values, "errors": errors}
    return render(request, "admin/users/list.html", context, status_code=status_code)


async def _detail_page(
    request: Request, session: SessionDep, user: User, *, status_code: int = 200, **extra: Any
) -> Response:
    """The account page; `extra` carries a form's errors, a notice, or a new token's secret (shown once)."""
    tokens = await auth.list_tokens(session, user)
    now = datetime.now(UTC)
    context = {
        "account": user,
        "tokens": tokens,
        "live_tokens": sum(1 for t in tokens if auth.is_live(t, now)),
        "token_days": settings.token_days,
        "scopes": sorted(auth.ROLE_SCOPES[Role(user.role)]),
        "password_error": None,
        "token_errors": {},
        "token_values": {},
        "new_token": None,
        "notice": None,
        "now": now,
        "member_of": await projects.memberships(session, user.id),
        "not_member_of": await projects.non_memberships(session, user.id),
        **extra,
    }
    return render(request, "admin/users/detail.html", context, status_code=status_code)


@router.get("/users")
async def users(request: Request, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """Every account, and the form to create one."""
    return await _list_page(request, session, values={"role": Role.rater}, errors={})


@router.post("/users")
async def create_user(request: Request, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """Create an admin, rater or trainer; problems come back beside their fields."""
    values = text_fields(await read_form(request), ("email", "name", "role", "password", "kind"))
    if not values.get("password"):
        values.pop("password", None)  # an empty field: no password (refused below unless a model)
    data, errors = validate(UserCreate, values, USER_LABELS, USER_MESSAGES)
    if data is not None:
        try:
            user = await service.create(session, data, actor=admin.user)
        except Conflict as exc:
            errors = {"email": exc.message}
        except Invalid as exc:  # the kind's rules (a model: rater, no password; a human: a password)
            errors = {"kind" if exc.message == service.MODEL_ROLE else "password": exc.message}
        else:
            return done(request, f"/admin/users/{user.id}", f"Account {user.email} created ({user.role}).")
    values.pop("password", None)  # never echo a password back into the page
    return await _list_page(request, session, values=values, errors=errors, status_code=422)


@router.get("/users/{user_id}")
async def user_detail(request: Request, user_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """One account: reset its password, (de)activate it, manage its API tokens."""
    return await _detail_page(request, session, await service.get(session, user_id))


@router.post("/users/{user_id}/password")
async def reset_password(
    request: Request, user_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Set a new password; the account's open browser sessions end."""
    user = await service.get(session, user_id)
    values = text_fields(await read_form(request), ("password",))
    data, errors = validate(UserUpdate, {"password": values.get("password", "")}, USER_LABELS)
    if data is None:
        return await _detail_page(request, session, user, password_error=errors["password"], status_code=422)
    await service.update(session, user, data, actor=admin.user)
    message = f"Password of {user.email} reset; their sessions were ended. Their API tokens still work."
    return done(request, f"/admin/users/{user.id}", message)


@router.post("/users/{user_id}/tokens/revoke-all")
async def revoke_all_tokens(
    request: Request, user_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Revoke every live API token of the account (after a password leak, say)."""
    user = await service.get(session, user_id)
    count = await auth.revoke_all_tokens(session, user, actor=admin.user)
    return done(request, f"/admin/users/{user.id}", f"{_tokens(count)} of {user.email} revoked.")


def _tokens(count: int) -> str:
    return "1 API token" if count == 1 else f"{count} API tokens"


@router.post("/users/{user_id}/active")
async def set_active(request: Request, user_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep) -> Response:
    """Deactivate an account (its sessions and tokens stop working) or reactivate it."""
    user = await service.get(session, user_id)
    active = (await read_form(request)).get("active") == "true"
    try:
        await service.update(session, user, UserUpdate(is_active=active), actor=admin.user)
    except Invalid as exc:
        return await _detail_page(request, session, user, notice=("error", exc.message), status_code=exc.status_code)
    return done(request, f"/admin/users/{user.id}", f"{user.email} {'reactivated' if active else 'deactivated'}.")


@router.post("/users/{user_id}/tokens")
async def create_token(
    request: Request, user_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Create an API token; its secret is on this response only."""
    user = await service.get(session, user_id)
    form = await read_form(request)
    values: dict[str, Any] = text_fields(form, ("name", "expires_in_days"))
    values["scopes"] = [str(s) for s in form.getlist("scopes")]
    values["never_expires"] = checkbox(form, "never_expires")
    data: dict[str, Any] = {"name": values.get("name", ""), "scopes": values["scopes"]}
    if values["never_expires"]:
        data["expires_in_days"] = None
    elif values.get("expires_in_days"):  # left empty: the default expiry
        data["expires_in_days"] = values["expires_in_days"]
    token_data, errors = validate(TokenCreate, data, TOKEN_LABELS, TOKEN_MESSAGES)
    if token_data is not None:
        try:
            token, secret = await auth.create_token(
                session,
                user=user,
                name=token_data.name,
                scopes=token_data.scopes,
                expires_in_days=token_data.expires_in_days,
                actor=admin.user,
            )
        except Invalid as exc:
            errors = {FORM_ERROR: exc.message}
        else:
            return await _detail_page(request, session, user, new_token=(token, secret), status_code=201)
    return await _detail_page(request, session, user, token_errors=errors, token_values=values, status_code=422)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(
    request: Request, token_id: uuid.UUID, admin: AdminPagePrincipal, session: SessionDep
) -> Response:
    """Revoke a token at once; requests with it then get 401."""
    token = await auth.revoke_token(session, token_id, actor=admin.user)
    user = await service.get(session, token.user_id)
    message = f"Token {token.prefix}… revoked."
    if not is_htmx(request):
        return done(request, f"/admin/users/{user.id}", message)
    return await _detail_page(request, session, user, notice=("success", message))
