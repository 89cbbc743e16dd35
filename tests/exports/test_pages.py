"""Export pages over HTTP: the admin's download page (a link per format, encoding and granularity,
why item exports are empty, last manifests), the trainer's landing page (projects, snippets,
tokens, last cursor), where a trainer lands after login, and the empty-export header."""

import asyncio
import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.exports.formats import ExportFormat
from server.models import Export, Role
from tests.factories import (
    PASSWORD,
    bearer,
    create_judgment,
    create_project,
    create_token,
    create_user,
    import_items,
    native_items,
)
from tests.web.admin import login_as
from tests.web.conftest import page_login
from tests.web.html import parse

NOT_COMPLETE = (
    "No item is complete yet: with overlap 2 an item completes when it has 2 judgments, "
    "and granularity=item exports only completed items."
)


async def _finished(session: AsyncSession, export_id: str) -> None:
    """The manifest is marked complete just after the last byte went out: wait for it (at most 5 s)."""
    for _ in range(100):
        if await session.scalar(select(Export.status).where(Export.id == uuid.UUID(export_id))) == "complete":
            return
        await session.rollback()
        await asyncio.sleep(0.05)
    raise AssertionError("the export was never marked complete")


class TestAdminExportPage:
    async def test_a_link_per_format_encoding_granularity(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin, _ = await login_as(client, session)
        project = await create_project(session, admin, overlap=2)
        await import_items(session, project, admin, native_items(2))
        page = parse((await client.get(f"/admin/projects/{project.id}/export")).text)
        links = {a["href"] for a in page.find_all("a") if a.get("data-export") is not None}
        expected = {
            f"/api/v1/projects/{project.id}/export?format={f}&encoding={e}&granularity={g}"
            for f in ExportFormat
            for e in ("jsonl", "parquet")
            for g in ("judgment", "item")
            if not (f == ExportFormat.critiques and g == "item")  # per judgment only
        }
        assert links == expected
        assert NOT_COMPLETE in page.by_id("empty-items").text
        assert str(project.id) in page.by_id("export-filters").text

    async def test_a_link_downloads_and_leaves_a_manifest(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin, _ = await login_as(client, session)
        project = await create_project(session, admin)
        await import_items(session, project, admin, native_items(2))
        await create_judgment(session, project, admin)
        query = "format=trl&encoding=jsonl&granularity=judgment"
        response = await client.get(f"/api/v1/projects/{project.id}/export?{query}")
        assert response.status_code == 200
        assert len(response.text.splitlines()) == 1, response.headers
        page = parse((await client.get(f"/admin/projects/{project.id}/export")).text)
        assert page.find_all(id="empty-items") == []
        rows = page.find_all("tbody")[-1].find_all("tr")
        assert [r.find("td", **{"data-label": "Rows"}).text for r in rows] == ["1"]


class TestEmptyItemExport:
    async def test_header_says_why(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin, overlap=2)
        await import_items(session, project, admin, native_items(2))
        token = await create_token(session, admin)
        url = f"/api/v1/projects/{project.id}/export"
        response = await client.get(url, params={"granularity": "item"}, headers=bearer(token))
        assert response.status_code == 200
        assert response.text == ""
        assert response.headers["Assay-Empty-Reason"] == NOT_COMPLETE
        judgment_level = await client.get(url, headers=bearer(token))
        assert "Assay-Empty-Reason" not in judgment_level.headers


class TestTrainerPage:
    async def test_trainer_lands_on_it_after_login(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        trainer = await create_user(session, role=Role.trainer)
        response = await page_login(client, trainer.email, PASSWORD)
        assert response.status_code == 303
        home = await client.get("/")
        assert home.status_code == 303
        assert home.headers["location"] == "/trainer"
        page = parse((await client.get("/trainer")).text)
        empty = page.find(class_="empty").text
        assert f"Your account ({trainer.email}) can export only the projects it is a member of." in empty
        assert "no live token with the export:read scope" in page.text

    async def test_projects_snippets_tokens_and_last_cursor(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        trainer = await create_user(session, role=Role.trainer)
        project = await create_project(session, admin, members=(trainer,), name="Helpful <v2>")
        await create_project(session, admin, name="Not shared")
        await import_items(session, project, admin, native_items(2))
        await create_judgment(session, project, admin)
        token = await create_token(session, trainer)
        pulled = await client.get(f"/api/v1/projects/{project.id}/export", headers=bearer(token))
        cursor = pulled.headers["Assay-Next-Cursor"]
        await _finished(session, pulled.headers["Assay-Export-Id"])
        await page_login(client, trainer.email, PASSWORD)
        page = parse((await client.get("/trainer")).text)
        sections = [s for s in page.find_all("section") if s.find_all("code", class_="project-id")]
        assert [s.find("h2").text for s in sections] == ["Helpful <v2>"]
        snippet = sections[0].find("pre").text
        assert f"/api/v1/projects/{project.id}/export?format=trl&after={cursor}" in snippet
        assert "export:read" in page.find("section", **{"aria-labelledby": "tokens-h"}).text

    async def test_raters_are_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        await login_as(client, session, Role.rater)
        response = await client.get("/trainer")
        assert response.status_code == 403
        assert "A rater account cannot export; ask an admin for a trainer account." in response.text


class TestTokenPageProjects:
    async def test_lists_memberships_and_where_to_add(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, _ = await login_as(client, session)
        trainer = await create_user(session, role=Role.trainer)
        shared = await create_project(session, admin, members=(trainer,), name="Shared")
        other = await create_project(session, admin, name="Other")
        section = parse((await client.get(f"/admin/users/{trainer.id}")).text).by_id("exportable")
        assert str(shared.id) in section.find("ul").text
        missing = section.find("ul", class_="missing-projects")
        assert missing.text == f"Other: add {trainer.email} on its Members page"
        assert missing.find("a")["href"] == f"/admin/projects/{other.id}/members"
