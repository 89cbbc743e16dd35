"""The authorization matrix: every route of the app by every kind of caller → the status it gets.

The table below has one explicit entry per route (method and path, as in the app's route table).
A route added without an entry fails `test_every_route_has_an_entry`, so whoever adds a route
decides, here, who may call it. Each entry names the route's rule and the status a caller it
lets through gets for the bare request sent here (no body, or an empty form or JSON object:
often 422, which shows the request got past authorization and stopped at validation).

Callers (`PRINCIPALS`): nobody; a rater who is a member of the project and one who is not; a
trainer (a member); an admin; tokens of that admin with each single scope; a revoked, an expired
token; and a deactivated account (its token and a session cookie). People use a browser session
(the cookie, plus the CSRF header on writes); tokens are sent as `Authorization: Bearer`.
Pages never accept tokens, so a token alone is sent to the login page there.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import Mount

from server.auth import service as auth
from server.config import settings
from server.exports import service as exports
from server.labeling import service as labeling
from server.labeling.schemas import JudgmentCreate
from server.models import ApiToken, Export, PlantedFlaw, RewardModel, Role, Scope, User, UserSession
from server.projects import service as projects
from server.projects.schemas import ProjectCreate
from server.security import SESSION_TOKEN_PREFIX, csrf_token_for, generate_token, password_hash, token_digest
from tests.factories import PASSWORD, import_items, native_items

PASSWORD_HASH = password_hash.hash(PASSWORD)  # once: Argon2 per account would make this test slow

ANONYMOUS, RATER, OTHER_RATER, TRAINER, ADMIN = "anonymous", "rater member", "rater non-member", "trainer", "admin"
REVOKED, EXPIRED, DEACTIVATED = "revoked token", "expired token", "deactivated user"
SCOPE_TOKENS = {scope: f"admin token {scope.value}" for scope in Scope}
# The order requests are sent in: refusals first, the callers who may change things last.
PRINCIPALS = (
    ANONYMOUS,
    REVOKED,
    EXPIRED,
    DEACTIVATED,
    OTHER_RATER,
    TRAINER,
    RATER,
    *(SCOPE_TOKENS[s] for s in Scope if s is not Scope.admin),
    ADMIN,
    SCOPE_TOKENS[Scope.admin],
)
PEOPLE = {RATER: Role.rater, OTHER_RATER: Role.rater, TRAINER: Role.trainer, ADMIN: Role.admin}
DEAD = (ANONYMOUS, REVOKED, EXPIRED, DEACTIVATED)
LOGIN = "login"  # a 303 to the login page (a page without a valid session)


# --- the rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Who gets what from one route; `ok` is the status for callers it lets through."""

    name: str
    expect: Callable[[str], int | str]


def _role_may(principal: str, scope: Scope) -> bool:
    """What a browser session of this person may do (a trainer's session has no items:write)."""
    return scope in auth.SESSION_SCOPES[PEOPLE[principal]]


def _api(live: Callable[[str], int | str]) -> Callable[[str], int | str]:
    """Dead credentials get 401 on the JSON API; everyone else is up to the rule."""
    return lambda p: 401 if p in DEAD else live(p)


def anyone(ok: int | str) -> Rule:
    """No authentication at all."""
    return Rule(f"anyone → {ok}", lambda p: ok)


def signed_in(ok: int) -> Rule:
    """Any valid session or token (CurrentPrincipal, nothing else)."""
    return Rule(f"signed in → {ok}", _api(lambda p: ok))


def admin(ok: int) -> Rule:
    """AdminPrincipal: an admin's session, or an admin's token with the admin scope."""

    def live(p: str) -> int:
        return ok if p in (ADMIN, SCOPE_TOKENS[Scope.admin]) else 403

    return Rule(f"admins → {ok}", _api(live))


def member(ok: int) -> Rule:
    """CurrentPrincipal + the project visibility rule: members and admins; others 404."""

    def live(p: str) -> int:
        return 404 if p == OTHER_RATER else ok

    return Rule(f"project members → {ok}", _api(live))


def scoped(scope: Scope, ok: int, *, others: int = 404) -> Rule:
    """scoped(scope): a role that may hold it (sessions), or a token that has it (or admin); then
    the project (or object) must be visible: `others` for a non-member who passed the scope."""

    def live(p: str) -> int:
        if p in PEOPLE:
            if not _role_may(p, scope):
                return 403
            return others if p == OTHER_RATER else ok
        return ok if p in (SCOPE_TOKENS[scope], SCOPE_TOKENS[Scope.admin]) else 403

    return Rule(f"scope {scope.value} → {ok}", _api(live))


def owner(scope: Scope, ok: int) -> Rule:
    """scoped(scope) on an assignment: only the rater it is leased to; 404 for everyone else."""

    def live(p: str) -> int:
        if p in PEOPLE:
            return ok if p == RATER else 404 if _role_may(p, scope) else 403
        return 404 if p in (SCOPE_TOKENS[scope], SCOPE_TOKENS[Scope.admin]) else 403

    return Rule(f"the assignment's rater ({scope.value}) → {ok}", _api(live))


def judgment_owner(ok: int) -> Rule:
    """scoped(judgments:write) on a judgment: its rater; others who can see its project get 409 (not
    theirs, said in a sentence); those who cannot, 404."""

    def live(p: str) -> int:
        if p in PEOPLE:
            if not _role_may(p, Scope.judgments_write):
                return 403
            return ok if p == RATER else 404 if p == OTHER_RATER else 409
        return 409 if p in (SCOPE_TOKENS[Scope.judgments_write], SCOPE_TOKENS[Scope.admin]) else 403

    return Rule(f"the judgment's rater ({Scope.judgments_write.value}) → {ok}", _api(live))


def login_page() -> Rule:
    """The login form for strangers; someone already signed in goes straight on (303 to /)."""
    return Rule("login form", lambda p: 303 if p in PEOPLE else 200)


def page(ok: int | str) -> Rule:
    """PagePrincipal: any browser session; no session (tokens do not count) → login page."""
    return Rule(f"page, signed in → {ok}", lambda p: ok if p in PEOPLE else LOGIN)


def admin_page(ok: int | str) -> Rule:
    """AdminPagePrincipal: an admin's session; other people get the 403 page."""
    return Rule(f"admin page → {ok}", lambda p: LOGIN if p not in PEOPLE else ok if p == ADMIN else 403)


def rater_page(ok: int | str, *, visible_to: tuple[str, ...] = (RATER, ADMIN)) -> Rule:
    """RaterPagePrincipal (a role that may judge), then the project or assignment must be the
    caller's (`visible_to`): 404 for other people who may judge."""

    def expect(p: str) -> int | str:
        if p not in PEOPLE:
            return LOGIN
        if not _role_may(p, Scope.judgments_write):
            return 403
        return ok if p in visible_to else 404

    return Rule(f"rater page → {ok}", expect)


def export_page(ok: int | str) -> Rule:
    """ExportPagePrincipal: a browser session of a role that may export (trainers, admins); others 403."""

    def expect(p: str) -> int | str:
        if p not in PEOPLE:
            return LOGIN
        return ok if _role_may(p, Scope.export_read) else 403

    return Rule(f"export page → {ok}", expect)


def overriding(rule: Rule, **statuses: int | str) -> Rule:
    """The rule, except for callers whose status follows from what an earlier caller changed."""
    named = {SHORT[k]: v for k, v in statuses.items()}
    return Rule(f"{rule.name} ({', '.join(statuses)} differ)", lambda p: named.get(p, rule.expect(p)))


SHORT = {"admin_token": SCOPE_TOKENS[Scope.admin], "admin": ADMIN, "rater": RATER, "trainer": TRAINER}


@dataclass(frozen=True)
class Entry:
    rule: Rule
    body: str | dict[str, str] | None = None  # "json": an empty JSON object; "form" or a dict: a form
    why: str = ""


J, F = "json", "form"
P = "/api/v1"
MATRIX: dict[tuple[str, str], Entry] = {
    # Outside the API and the pages
    ("GET", "/healthz"): Entry(anyone(200)),
    ("GET", "/api/docs"): Entry(anyone(200)),
    ("GET", "/api/openapi.json"): Entry(anyone(200)),
    ("GET", "/static"): Entry(anyone(200), why="a file under the static mount"),
    # Sessions and tokens
    ("POST", f"{P}/auth/session"): Entry(anyone(422), J, "the login itself: credentials are its body"),
    ("DELETE", f"{P}/auth/session"): Entry(signed_in(204)),
    ("GET", f"{P}/auth/me"): Entry(signed_in(200)),
    ("POST", f"{P}/users/{{user_id}}/tokens"): Entry(admin(422), J),
    ("GET", f"{P}/users/{{user_id}}/tokens"): Entry(admin(200)),
    ("DELETE", f"{P}/users/{{user_id}}/tokens"): Entry(admin(200)),
    ("DELETE", f"{P}/tokens/{{token_id}}"): Entry(admin(200), why="revoking twice keeps the first time"),
    # Accounts
    ("GET", f"{P}/users"): Entry(admin(200)),
    ("POST", f"{P}/users"): Entry(admin(422), J),
    ("PATCH", f"{P}/users/{{user_id}}"): Entry(admin(200), J, "an empty update changes nothing"),
    # Projects
    ("GET", f"{P}/projects"): Entry(signed_in(200), why="lists only the caller's projects"),
    ("POST", f"{P}/projects"): Entry(admin(422), J),
    ("GET", f"{P}/projects/{{project_id}}"): Entry(member(200)),
    ("PATCH", f"{P}/projects/{{project_id}}"): Entry(admin(200), J),
    ("DELETE", f"{P}/projects/{{project_id}}"): Entry(admin(422), why="no confirm: refused, naming what would go"),
    ("GET", f"{P}/projects/{{project_id}}/progress"): Entry(member(200)),
    ("GET", f"{P}/projects/{{project_id}}/members"): Entry(admin(200)),
    ("POST", f"{P}/projects/{{project_id}}/members"): Entry(admin(422), J),
    ("PATCH", f"{P}/projects/{{project_id}}/members/{{user_id}}"): Entry(
        admin(422), J, "neither suspended nor group: nothing to change"
    ),
    ("POST", f"{P}/projects/{{project_id}}/members/{{user_id}}/qualification"): Entry(
        admin(422), J, "action is required"
    ),
    ("DELETE", f"{P}/projects/{{project_id}}/members/{{user_id}}"): Entry(
        overriding(admin(204), admin_token=404), why="the admin's session removed the member first"
    ),
    # Batches
    ("POST", f"{P}/projects/{{project_id}}/batches"): Entry(
        scoped(Scope.items_write, 422), why="no file: refused after authorization"
    ),
    ("POST", f"{P}/projects/{{project_id}}/batches/preview"): Entry(
        scoped(Scope.items_write, 422), why="no file: refused after authorization"
    ),
    ("GET", f"{P}/projects/{{project_id}}/batches"): Entry(admin(200)),
    ("PATCH", f"{P}/batches/{{batch_id}}"): Entry(admin(200), J),
    ("DELETE", f"{P}/batches/{{batch_id}}"): Entry(admin(422), why="no confirm: refused, naming what would go"),
    # Labeling
    ("POST", f"{P}/projects/{{project_id}}/assignments/next"): Entry(scoped(Scope.judgments_write, 200)),
    ("POST", f"{P}/assignments/{{assignment_id}}/judgment"): Entry(owner(Scope.judgments_write, 422), J),
    ("POST", f"{P}/assignments/{{assignment_id}}/skip"): Entry(owner(Scope.judgments_write, 200)),
    ("POST", f"{P}/assignments/{{assignment_id}}/heartbeat"): Entry(owner(Scope.judgments_write, 200)),
    ("PATCH", f"{P}/judgments/{{judgment_id}}"): Entry(judgment_owner(422), J, "an empty body is no verdict"),
    # Exports
    ("GET", f"{P}/projects/{{project_id}}/export"): Entry(scoped(Scope.export_read, 200)),
    ("GET", f"{P}/exports/{{export_id}}"): Entry(scoped(Scope.export_read, 200)),
    ("GET", f"{P}/projects/{{project_id}}/exports"): Entry(scoped(Scope.export_read, 200)),
    # Reward models
    ("POST", f"{P}/projects/{{project_id}}/reward-models"): Entry(scoped(Scope.reward_models_write, 422), J),
    ("GET", f"{P}/projects/{{project_id}}/reward-models"): Entry(member(200)),
    ("GET", f"{P}/projects/{{project_id}}/reward-models/{{version}}"): Entry(member(200)),
    ("POST", f"{P}/projects/{{project_id}}/reward-models/{{version}}/scores"): Entry(
        scoped(Scope.reward_models_write, 422), J
    ),
    ("GET", f"{P}/projects/{{project_id}}/open-items"): Entry(scoped(Scope.export_read, 200)),
    ("GET", f"{P}/projects/{{project_id}}/queue"): Entry(admin(200)),
    # Quality
    ("PUT", f"{P}/items/{{item_id}}/gold"): Entry(scoped(Scope.items_write, 422), J, "an empty answer is refused"),
    ("DELETE", f"{P}/items/{{item_id}}/gold"): Entry(scoped(Scope.items_write, 204), why="not gold: nothing to do"),
    ("GET", f"{P}/projects/{{project_id}}/quality"): Entry(admin(200)),
    ("GET", f"{P}/projects/{{project_id}}/handoff-report"): Entry(admin(200)),
    ("GET", f"{P}/projects/{{project_id}}/leaderboard"): Entry(admin(200)),
    ("GET", f"{P}/projects/{{project_id}}/leaderboard/matrix"): Entry(admin(200)),
    # Critiques
    ("GET", f"{P}/projects/{{project_id}}/assistance-report"): Entry(admin(200)),
    ("POST", f"{P}/items/{{item_id}}/critiques"): Entry(scoped(Scope.items_write, 422), J, "no critiques: refused"),
    ("GET", f"{P}/items/{{item_id}}/planted"): Entry(scoped(Scope.items_write, 200)),
    ("PUT", f"{P}/items/{{item_id}}/planted"): Entry(scoped(Scope.items_write, 422), J, "no candidates: refused"),
    # Task trees
    ("POST", f"{P}/items/{{item_id}}/subtasks"): Entry(scoped(Scope.items_write, 422), J, "no subtasks: refused"),
    # Pages: login
    ("GET", "/login"): Entry(login_page()),
    ("POST", "/login"): Entry(anyone(403), F, "no login nonce: the form's own CSRF guard refuses it"),
    ("POST", "/logout"): Entry(page(LOGIN), F, "logging out also ends on the login page"),
    # Pages: raters
    ("GET", "/"): Entry(overriding(page(200), trainer=303), why="a trainer's home is /trainer"),
    ("GET", "/trainer"): Entry(export_page(200)),
    ("GET", "/projects/{project_id}/label"): Entry(rater_page(200), why="the admin created the project: a member"),
    ("POST", "/projects/{project_id}/label/queue"): Entry(
        rater_page(303), F, "without htmx it leases nothing and goes back to the page"
    ),
    ("POST", "/assignments/{assignment_id}/judge"): Entry(rater_page(303, visible_to=(RATER,)), {"verdict": "tie"}),
    ("POST", "/assignments/{assignment_id}/skip"): Entry(rater_page(303, visible_to=(RATER,)), F),
    ("GET", "/projects/{project_id}/label/undo"): Entry(rater_page(303), why="to the last verdict, or back"),
    ("GET", "/projects/{project_id}/label/recent"): Entry(rater_page(200)),
    ("GET", "/judgments/{judgment_id}/revise"): Entry(
        overriding(rater_page(200, visible_to=(RATER,)), admin=409), why="the admin sees the project: not theirs"
    ),
    ("POST", "/judgments/{judgment_id}/revise"): Entry(
        overriding(rater_page(303, visible_to=(RATER,)), admin=409), {"verdict": "tie"}, "the stored verdict again"
    ),
    # Pages: admins
    ("GET", "/admin/projects"): Entry(admin_page(200)),
    ("GET", "/admin/projects/new"): Entry(admin_page(200)),
    ("POST", "/admin/projects"): Entry(admin_page(422), F),
    ("GET", "/admin/projects/{project_id}/settings"): Entry(admin_page(200)),
    ("POST", "/admin/projects/{project_id}/settings"): Entry(admin_page(303), F, "every setting is optional"),
    ("POST", "/admin/projects/preview"): Entry(admin_page(200), F),
    ("GET", "/admin/projects/{project_id}"): Entry(admin_page(200)),
    ("GET", "/admin/projects/{project_id}/members"): Entry(admin_page(200)),
    ("POST", "/admin/projects/{project_id}/members"): Entry(admin_page(422), F),
    ("POST", "/admin/projects/{project_id}/members/{user_id}/remove"): Entry(admin_page(303), F),
    ("POST", "/admin/projects/{project_id}/members/{user_id}/reinstate"): Entry(admin_page(303), F),
    ("POST", "/admin/projects/{project_id}/members/{user_id}/group"): Entry(admin_page(303), F, "empty: clears it"),
    ("POST", "/admin/projects/{project_id}/members/{user_id}/qualification"): Entry(
        admin_page(422), F, "no action chosen"
    ),
    ("POST", "/admin/items/{item_id}/gold"): Entry(admin_page(422), F, "no answer chosen"),
    ("POST", "/admin/items/{item_id}/gold/clear"): Entry(admin_page(303), F, "not gold: nothing to do"),
    ("POST", "/admin/items/{item_id}/planted"): Entry(admin_page(422), F, "no response chosen"),
    ("POST", "/admin/items/{item_id}/planted/{planted_id}/remove"): Entry(admin_page(303), F),
    ("GET", "/admin/projects/{project_id}/batches"): Entry(admin_page(200)),
    ("POST", "/admin/projects/{project_id}/batches"): Entry(admin_page(422), F),
    ("POST", "/admin/batches/{batch_id}"): Entry(admin_page(303), F),
    ("GET", "/admin/batches/{batch_id}/delete"): Entry(admin_page(200)),
    ("POST", "/admin/batches/{batch_id}/delete"): Entry(admin_page(422), F, "no name typed: nothing deleted"),
    ("POST", "/admin/projects/{project_id}/archive"): Entry(admin_page(422), F, "neither archive nor unarchive"),
    ("GET", "/admin/projects/{project_id}/delete"): Entry(admin_page(200)),
    ("POST", "/admin/projects/{project_id}/delete"): Entry(admin_page(422), F, "no name typed: nothing deleted"),
    ("GET", "/admin/projects/{project_id}/reward-models"): Entry(admin_page(200)),
    ("GET", "/admin/projects/{project_id}/leaderboard"): Entry(admin_page(200)),
    ("GET", "/admin/projects/{project_id}/items"): Entry(admin_page(200)),
    ("GET", "/admin/items/{item_id}"): Entry(admin_page(200)),
    ("GET", "/admin/projects/{project_id}/export"): Entry(admin_page(200)),
    ("GET", "/admin/projects/{project_id}/raters/{user_id}"): Entry(admin_page(200)),
    ("GET", "/admin/projects/{project_id}/quality"): Entry(admin_page(200)),
    ("GET", "/admin/projects/{project_id}/assistance"): Entry(admin_page(200)),
    ("GET", "/admin/users"): Entry(admin_page(200)),
    ("POST", "/admin/users"): Entry(admin_page(422), F),
    ("GET", "/admin/users/{user_id}"): Entry(admin_page(200)),
    ("POST", "/admin/users/{user_id}/password"): Entry(admin_page(422), F),
    ("POST", "/admin/users/{user_id}/active"): Entry(admin_page(303), F, "deactivates the target account"),
    ("POST", "/admin/users/{user_id}/tokens"): Entry(admin_page(422), F),
    ("POST", "/admin/users/{user_id}/tokens/revoke-all"): Entry(admin_page(303), F),
    ("POST", "/admin/tokens/{token_id}/revoke"): Entry(admin_page(303), F),
}


def route_table(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves; a mount counts once, as GET.

    FastAPI keeps an included router as one entry of `app.routes`; its routes, with their full
    paths, come from `effective_route_contexts()`."""
    routes: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Mount):
            routes.add(("GET", route.path))
            continue
        included = getattr(route, "effective_route_contexts", None)
        for served in included() if included else [route]:
            routes.update((method, served.path) for method in served.methods or () if method != "HEAD")
    return routes


def test_every_route_has_an_entry(app: FastAPI) -> None:
    routes = route_table(app)
    assert sorted(routes - MATRIX.keys()) == [], "routes without an entry in the authorization matrix"
    assert sorted(MATRIX.keys() - routes) == [], "entries for routes that no longer exist"


# --- the world the requests run against ---------------------------------------------------------


@dataclass
class World:
    ids: dict[str, str]
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # per principal
    cookies: dict[str, str] = field(default_factory=dict)  # per principal: the session secret


async def _account(session: AsyncSession, role: Role, *, active: bool = True) -> User:
    user = User(email=f"{role}-{uuid.uuid4().hex[:8]}@example.com", role=role, password_hash=PASSWORD_HASH)
    user.is_active = active
    session.add(user)
    await session.flush()
    return user


def _browser_session(session: AsyncSession, user: User) -> str:
    secret = generate_token(SESSION_TOKEN_PREFIX)
    expires = datetime.now(UTC) + timedelta(days=1)
    session.add(UserSession(user_id=user.id, token_hash=token_digest(secret), expires_at=expires))
    return secret


async def _token(session: AsyncSession, user: User, scope: Scope, **changes: datetime) -> str:
    token, secret = await auth.create_token(
        session, user=user, name=scope.value, scopes=[scope], expires_in_days=30, actor=user
    )
    for name, value in changes.items():
        setattr(token, name, value)
    return secret


async def build_world(session: AsyncSession) -> World:
    people = {name: await _account(session, role) for name, role in PEOPLE.items()}
    target = await _account(session, Role.trainer)  # the account admin routes act on
    gone = await _account(session, Role.admin, active=False)
    project = await projects.create(session, ProjectCreate(name="Matrix", allow_tie=True), actor=people[ADMIN])
    for member in (people[RATER], people[TRAINER], target):
        await projects.add_member(session, project, member.id, actor=people[ADMIN])
    await session.commit()
    batch = await import_items(session, project, people[ADMIN], native_items(4))
    judged = await labeling.next_assignment(session, project=project, rater=people[RATER])
    assert judged is not None
    judgment = await labeling.submit(
        session, assignment_id=judged.assignment.id, rater=people[RATER], data=JudgmentCreate(tie=True)
    )
    leased = await labeling.next_assignment(session, project=project, rater=people[RATER])
    assert leased is not None
    metrics = {"accuracy": 0.6, "log_loss": 0.65, "n_pairs": 10, "training_seconds": 1.0}
    model = RewardModel(project_id=project.id, version=1, features="f", cursor_to="c", metrics=metrics)
    export = Export(
        project_id=project.id, format="trl", encoding="jsonl", granularity="judgment", format_version=1,
        cursor_from=0, cursor_to=0, filters=exports.ExportRequest().filters(),
    )  # fmt: skip
    planted = PlantedFlaw(
        project_id=project.id, item_id=leased.assignment.item_id, candidate_id=leased.assignment.shown_order[0],
        span_start=0, span_end=3, description="planted",
    )  # fmt: skip
    session.add_all([model, export, planted])
    victim, _ = await auth.create_token(
        session, user=target, name="victim", scopes=[Scope.export_read], expires_in_days=30, actor=people[ADMIN]
    )
    world = World(
        ids={
            "project_id": str(project.id),
            "user_id": str(target.id),
            "token_id": str(victim.id),
            "batch_id": str(batch),
            "assignment_id": str(leased.assignment.id),
            "judgment_id": str(judgment.judgment.id),
            "item_id": str(leased.assignment.item_id),
            "version": "1",
        }
    )
    admin_user = people[ADMIN]
    bearers = {SCOPE_TOKENS[s]: await _token(session, admin_user, s) for s in Scope}
    bearers[REVOKED] = await _token(session, admin_user, Scope.admin, revoked_at=datetime.now(UTC))
    bearers[EXPIRED] = await _token(session, admin_user, Scope.admin)
    bearers[DEACTIVATED] = await _token(session, gone, Scope.admin)
    for name, user in people.items():
        world.cookies[name] = _browser_session(session, user)
    world.cookies[DEACTIVATED] = _browser_session(session, gone)  # as if left over from before
    await session.flush()
    await session.refresh(export)
    world.ids["export_id"] = str(export.id)
    world.ids["planted_id"] = str(planted.id)
    await session.commit()
    await _expire(session, bearers[EXPIRED])
    for name, secret in bearers.items():
        world.headers[name] = {"Authorization": f"Bearer {secret}"}
    for name, secret in world.cookies.items():
        world.headers.setdefault(name, {})["X-CSRF-Token"] = csrf_token_for(secret)
    return world


async def _expire(session: AsyncSession, secret: str) -> None:
    yesterday = datetime.now(UTC) - timedelta(days=1)
    await session.execute(
        update(ApiToken).where(ApiToken.token_hash == token_digest(secret)).values(expires_at=yesterday)
    )
    await session.commit()


# --- the matrix ----------------------------------------------------------------------------------


def _url(path: str, ids: dict[str, str]) -> str:
    if path == "/static":
        return "/static/app.css"
    return path.format(**ids)


async def _call(
    client: httpx.AsyncClient, method: str, url: str, entry: Entry, principal: str, world: World
) -> httpx.Response:
    client.cookies.clear()
    if principal in world.cookies:
        client.cookies.set(settings.session_cookie, world.cookies[principal])
    kwargs: dict[str, object] = {"headers": world.headers.get(principal, {})}
    if entry.body == "json":
        kwargs["json"] = {}
    elif entry.body == "form":
        kwargs["data"] = {}
    elif isinstance(entry.body, dict):
        kwargs["data"] = entry.body
    return await client.request(method, url, **kwargs)  # type: ignore[arg-type]


def observed(response: httpx.Response) -> int | str:
    if response.status_code == 303 and response.headers["location"].startswith("/login"):
        return LOGIN
    return response.status_code


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX), ids=[f"{m} {p}" for m, p in sorted(MATRIX)])
async def test_route(client: httpx.AsyncClient, session: AsyncSession, method: str, path: str) -> None:
    entry = MATRIX[(method, path)]
    world = await build_world(session)
    url = _url(path, world.ids)
    got = {p: observed(await _call(client, method, url, entry, p, world)) for p in PRINCIPALS}
    wanted = {p: entry.rule.expect(p) for p in PRINCIPALS}
    mismatches = {p: f"got {got[p]}, expected {wanted[p]}" for p in PRINCIPALS if got[p] != wanted[p]}
    assert mismatches == {}, f"{method} {path} ({entry.rule.name})"
