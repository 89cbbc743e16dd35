"""Who may send an upload's large body: decided from the request's headers, before a byte of it is read.

Every other request body is held to `max_body_bytes` (server/app.py `BodyLimit`). An upload
route gets `max_upload_bytes` only when its headers name someone who may import there: a bearer
token with `items:write` or an admin's browser session (API), an admin's session (page). The
route's own dependencies still decide the answer (401, 403, 404); this only decides how much of
the body anyone may make the server read, so an anonymous or unauthorised caller can never make
it spool a large body.
"""

import re

from starlette.requests import Request
from starlette.types import Scope

from server.auth import service as auth
from server.config import settings
from server.errors import AssayError
from server.models import Scope as TokenScope

_API_UPLOAD = re.compile(r"/api/v1/projects/[^/]+/batches")
_PAGE_UPLOAD = re.compile(r"/admin/projects/[^/]+/batches")


def is_upload_route(scope: Scope) -> bool:
    path = scope["path"]
    return scope["method"] == "POST" and bool(_API_UPLOAD.fullmatch(path) or _PAGE_UPLOAD.fullmatch(path))


async def may_upload(scope: Scope) -> bool:
    """Whether this upload request comes from someone who may import (its body may then be large)."""
    request = Request(scope)
    page = bool(_PAGE_UPLOAD.fullmatch(scope["path"]))
    authorization = request.headers.get("Authorization", "")
    cookie = request.cookies.get(settings.session_cookie)
    async with request.app.state.sessionmaker() as session:
        try:
            scheme, _, secret = authorization.partition(" ")
            if not page and scheme.lower() == "bearer" and secret.strip():
                principal = await auth.principal_for_token(session, secret.strip())
                return principal.has_scope(TokenScope.items_write)
            if cookie and (user := await auth.user_for_session(session, cookie)) is not None:
                principal = auth.Principal(user=user, session_token=cookie)
                return principal.is_admin if page else principal.has_scope(TokenScope.items_write)
            return False
        except AssayError:
            return False
        finally:
            await session.rollback()  # the route does the same lookups (and their writes) itself
