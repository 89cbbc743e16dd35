"""Project instructions: bounded, rendered once when saved, stored as HTML, never rendered per read.

The work of one render is bounded by counting the inline parser's token skips (the step the
adversarial inputs multiply: each unclosed `[` searches for its `]`), not by timing it.
"""

import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from markdown_it.parser_inline import ParserInline
from sqlalchemy.ext.asyncio import AsyncSession

from server import markdown
from server.markdown import MAX_INSTRUCTIONS, render_markdown
from server.models import Project, Role
from tests.factories import bearer, create_token, create_user

# Unclosed brackets and images, and brackets mixed with emphasis and code markers: the inputs
# that make markdown-it search to the end of the paragraph from every `[`.
ADVERSARIAL = ["[", "![", "[*", "*[_", "_*[", "[`", "*_", "*a **a ", "a**", "<", "[a](", "[a]: b\n[a]"]
SKIPS_PER_CHARACTER = 50  # about 40 at the nesting limit of 20; markdown-it's default (100) makes it 200


@pytest.fixture
def skips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the inline parser skipped a token since the fixture started."""
    count = [0]
    original = ParserInline.skipToken

    def counting(self: ParserInline, state: Any) -> None:
        count[0] += 1
        original(self, state)

    monkeypatch.setattr(ParserInline, "skipToken", counting)
    return count


@pytest.fixture
def alarm() -> Iterator[None]:
    """A generous guard: a render that never ends fails the test instead of hanging the run."""

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError("rendering did not finish in 120 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


class TestRenderingWork:
    @pytest.mark.parametrize("unit", ADVERSARIAL)
    def test_adversarial_input_at_the_limit(self, unit: str, skips: list[int], alarm: None) -> None:
        text = (unit * MAX_INSTRUCTIONS)[:MAX_INSTRUCTIONS]
        render_markdown(text)
        assert skips[0] <= SKIPS_PER_CHARACTER * MAX_INSTRUCTIONS

    def test_nesting_limit_keeps_real_documents_whole(self) -> None:
        text = "- a\n  - b\n    - c *em [link](http://x) **strong** `code`*\n      - d\n        > quote **x**\n"
        html = render_markdown(text)
        assert '<em>em <a href="http://x">link</a> <strong>strong</strong> <code>code</code></em>' in html
        assert "<blockquote>\n<p>quote <strong>x</strong></p>" in html


class TestStoredHtml:
    async def test_rendered_when_saved_and_read_as_stored(
        self, client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        token = await create_token(session, await create_user(session, role=Role.admin))
        created = await client.post(
            "/api/v1/projects", json={"name": "x", "instructions": "Be **kind**."}, headers=bearer(token)
        )
        assert created.json()["instructions_html"] == "<p>Be <strong>kind</strong>.</p>\n"
        project = await session.get(Project, created.json()["id"])
        assert project is not None
        assert project.instructions_html == "<p>Be <strong>kind</strong>.</p>\n"

        def refuse(text: str) -> str:
            raise AssertionError("instructions were rendered on a read")

        monkeypatch.setattr(markdown._md, "render", refuse)
        read = await client.get(f"/api/v1/projects/{project.id}", headers=bearer(token))
        assert read.json()["instructions_html"] == "<p>Be <strong>kind</strong>.</p>\n"
        listed = await client.get("/api/v1/projects", headers=bearer(token))
        assert listed.json()[0]["instructions_html"] == "<p>Be <strong>kind</strong>.</p>\n"

    async def test_rendered_again_when_changed(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        token = await create_token(session, await create_user(session, role=Role.admin))
        created = await client.post("/api/v1/projects", json={"name": "x"}, headers=bearer(token))
        changed = await client.patch(
            f"/api/v1/projects/{created.json()['id']}", json={"instructions": "# Rules"}, headers=bearer(token)
        )
        assert changed.json()["instructions_html"] == "<h1>Rules</h1>\n"

    async def test_length_bounded(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        token = await create_token(session, await create_user(session, role=Role.admin))
        response = await client.post(
            "/api/v1/projects", json={"name": "x", "instructions": "[" * (MAX_INSTRUCTIONS + 1)}, headers=bearer(token)
        )
        assert response.status_code == 422
        assert response.json()["detail"] == (
            "Invalid request: instructions: String should have at most 20000 characters"
        )
