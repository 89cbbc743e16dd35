"""Fuzzing the JSON API from its OpenAPI schema (schemathesis) against a real server process.

Every operation of `/api/openapi.json` is called by an admin (browser session), a rater
(browser session) and a trainer (a token with every scope a trainer may hold), in a fresh world
per operation (`build_world`: a project with a batch of items, a leased assignment, an export, a
reward model) so path parameters name real rows. Cases are generated from the schema: valid requests
and, where an operation has a body or query parameters, requests that break the schema. Each
response must not be a 5xx, must have a status the schema declares for the operation, and must
match the schema declared for that status.

`ASSAY_FUZZ_EXAMPLES` (default 10) caps the generated cases per operation and caller (3 when
the caller is refused on each: 401 or 403); the seeds are fixed, so a run is repeatable (raise the
cap, or set `ASSAY_FUZZ_SEED`, to explore further). The count of cases run is written at the end of the
module's run.
"""

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.app import OPENAPI_URL, create_app
from server.auth import service as auth
from server.config import settings
from server.db import Base
from server.models import Role
from tests.security.server import ServerProcess, start_server
from tests.security.test_authorization import ADMIN, RATER, TRAINER, World, build_world

EXAMPLES = int(os.environ.get("ASSAY_FUZZ_EXAMPLES", "10"))
REFUSED_EXAMPLES = 3  # for a caller the operation refuses (401/403 on every case)
SEED = int(os.environ.get("ASSAY_FUZZ_SEED", "0"))  # another seed, other cases
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
SCHEMA = schemathesis.openapi.from_dict(create_app(database_url="unused").openapi())
OPERATIONS = sorted(
    ((op.method.upper(), op.path) for op in (result.ok() for result in SCHEMA.get_all_operations())),
    key=lambda op: (op[1], op[0]),
)
TRAINER_TOKEN = "trainer token"
CALLERS = (ADMIN, RATER, TRAINER_TOKEN)


@dataclass
class Tally:
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    runs: int = 0
    # One world per operation, shared by its callers: the one caller an operation lets through is
    # mostly the only one that changes anything, and a world takes longer to build than a run.
    worlds: dict[tuple[str, str], World] = field(default_factory=dict)


@pytest.fixture(autouse=True)
def _clean_tables() -> None:
    """Each test builds its own world beside the others' (emptying every table takes longer than a
    test here): the tables are emptied once, after the module (`server`)."""


@pytest.fixture(scope="module")
async def server(database_url: str, engine: AsyncEngine) -> AsyncIterator[ServerProcess]:
    """The app under uvicorn in its own process."""
    process = start_server(database_url)
    yield process
    process.stop()
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "assay_meta")  # as conftest
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    counts = Tally()
    yield counts
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and counts.runs:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(counts.statuses.items()))
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"\nschemathesis: {counts.runs} runs (operations by callers), {counts.cases} cases, "
                f"at most {EXAMPLES} generated per run; statuses {statuses}"
            )


def test_schema_declares_errors_and_the_upload_body() -> None:
    """The upload route's bodies are in the schema (so they are fuzzed), and every operation
    declares the errors any route may give, with the error body."""
    upload = SCHEMA["/api/v1/projects/{project_id}/batches"]["POST"]
    assert sorted(upload.definition.raw["requestBody"]["content"]) == ["application/json", "multipart/form-data"]
    for method, path in OPERATIONS:
        responses = SCHEMA[path][method].definition.raw["responses"]
        for status in ("400", "401", "403", "404", "413", "422", "503"):
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"
            }, f"{method} {path} {status}"


async def _credentials(session: AsyncSession, world: World, caller: str) -> dict[str, str]:
    """The headers a caller sends: a browser session (cookie and CSRF header) or a bearer token."""
    if caller == TRAINER_TOKEN:
        trainer = await auth.user_for_session(session, world.cookies[TRAINER])  # the project's trainer
        assert trainer is not None
        _, secret = await auth.create_token(
            session,
            user=trainer,
            name="worker",
            scopes=sorted(auth.ROLE_SCOPES[Role.trainer]),
            expires_in_days=30,
            actor=trainer,
        )
        await session.commit()
        return {"Authorization": f"Bearer {secret}"}
    return {
        "Cookie": f"{settings.session_cookie}={world.cookies[caller]}",
        "X-CSRF-Token": world.headers[caller]["X-CSRF-Token"],
    }


def _strategy(operation: Any, ids: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Valid cases, and (where there is a body or a query to break) invalid ones, on real rows."""
    path_parameters = {p.name: ids[p.name] for p in operation.path_parameters}
    cases = operation.as_strategy(GenerationMode.POSITIVE, path_parameters=path_parameters)
    if operation.body or list(operation.query):
        cases |= operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=path_parameters)
    return cases


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
async def test_operation(
    server: ServerProcess, session: AsyncSession, tally: Tally, method: str, path: str, caller: str
) -> None:
    world = tally.worlds.get((method, path)) or tally.worlds.setdefault((method, path), await build_world(session))
    headers = await _credentials(session, world, caller)
    ids: dict[str, Any] = {**world.ids, "version": 1}
    operation = SCHEMA[path][method]
    http = requests.Session()
    strategy = _strategy(operation, ids)

    def run(examples: int, seed: int) -> set[int]:
        """`examples` cases (fewer when the strategy has fewer); the statuses they got."""
        statuses: set[int] = set()

        @hypothesis.seed(seed)
        @hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call_and_validate(base_url=server.url, session=http, headers=headers, checks=CHECKS)
            statuses.add(response.status_code)
            tally.cases += 1
            tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1

        fuzz()
        return statuses

    tally.runs += 1
    # A caller refused before the request is looked at gets the same refusal for every case: a few
    # show it is declared; the others get the whole run.
    if not run(REFUSED_EXAMPLES, seed=2 * SEED) <= {401, 403}:
        run(EXAMPLES - REFUSED_EXAMPLES, seed=2 * SEED + 1)


def test_schema_is_the_served_one(server: ServerProcess) -> None:
    """The schema fuzzed here is the one the server serves."""
    served = requests.get(f"{server.url}{OPENAPI_URL}", timeout=10).json()
    assert served == SCHEMA.raw_schema
