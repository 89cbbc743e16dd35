"""The batches admin page over plain HTTP: upload (refusals listed by line and field), progress
bars, pause/resume and priority; refusals for non-admins and missing CSRF tokens."""

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.deps import CSRF_REFUSED
from server.models import AuditEvent, Batch, Item, Project, Role, User
from tests.factories import create_judgment, create_project, create_user, import_items, jsonl, native_items
from tests.web.admin import htmx, login_as
from tests.web.html import Element, parse

ADMINS_ONLY = "This page is for admins. Your account can label the projects shared with it."


async def _setup(client: httpx.AsyncClient, session: AsyncSession, **settings: object) -> tuple[User, str, Project]:
    admin, csrf = await login_as(client, session)
    return admin, csrf, await create_project(session, admin, **settings)


async def _upload(
    client: httpx.AsyncClient,
    project: Project,
    csrf: str,
    content: bytes,
    filename: str = "items.jsonl",
    headers: dict[str, str] | None = None,
    **fields: str,
) -> httpx.Response:
    return await client.post(
        f"/admin/projects/{project.id}/batches",
        files={"file": (filename, content)},
        data={"csrf_token": csrf, **fields},
        headers=headers,
    )


def _error_rows(page: Element) -> list[list[str]]:
    return [
        [c.text for c in tr.find_all("td")]
        for tr in page.find("table", class_="errors-table").find("tbody").find_all("tr")
    ]


class TestBatchList:
    async def test_progress_bars_and_numbers(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, _, project = await _setup(client, session)
        rater = await create_user(session)
        project = await create_project(session, admin, members=(rater,), name="P2")
        await import_items(session, project, admin, native_items(4))
        await create_judgment(session, project, rater)
        page = parse((await client.get(f"/admin/projects/{project.id}/batches")).text)
        [batch] = page.find_all("li", class_="batch")
        meter = batch.find(role="progressbar")
        assert (meter["aria-valuenow"], meter["aria-valuemax"]) == ("1", "4")
        assert meter["aria-valuetext"] == "1 of 4 items complete (25%)"
        assert batch.find(class_="meter-text").text == "1 / 4 items complete (25%)"
        numbers = {d.find("dt").text: d.find("dd").text for d in batch.find("dl").find_all("div")}
        assert numbers == {"Judgments": "1", "Skips": "0", "Active leases": "0"}
        assert batch.find("input", name="priority")["value"] == "0"
        assert batch.find("button").text == "Pause items.jsonl"

    async def test_refresh_sends_only_the_list(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, _, project = await _setup(client, session)
        await import_items(session, project, admin, native_items(2))
        response = await client.get(f"/admin/projects/{project.id}/batches", headers=htmx("batch_list"))
        assert "<html" not in response.text
        assert len(parse(response.text).find_all("li", class_="batch")) == 1

    async def test_rater_gets_403(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin)
        await login_as(client, session, Role.rater)
        response = await client.get(f"/admin/projects/{project.id}/batches")
        assert response.status_code == 403
        assert parse(response.text).find("p", class_="lead").text == ADMINS_ONLY


class TestUpload:
    async def test_good_file_redirects_with_message(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf, project = await _setup(client, session)
        response = await _upload(client, project, csrf, jsonl(native_items(3)), name="first", priority="5")
        assert response.status_code == 303
        assert response.headers["location"] == f"/admin/projects/{project.id}/batches"
        batch = await session.scalar(select(Batch))
        assert batch is not None
        assert (batch.name, batch.priority, batch.item_count) == ("first", 5, 3)
        page = parse((await client.get(response.headers["location"])).text)
        assert page.by_id("flash").text == "Imported 3 items."
        assert page.find("li", class_="batch").find("h3").text == "first"
        assert (
            await session.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "batch.import")
            )
            == 1
        )

    async def test_htmx_upload_swaps_the_panel(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf, project = await _setup(client, session)
        response = await _upload(client, project, csrf, jsonl(native_items(3)), headers=htmx("batch_panel"))
        assert response.status_code == 201
        assert "<html" not in response.text
        panel = parse(response.text)
        assert panel.by_id("upload-result").text == "Imported 3 items."
        assert len(panel.find_all("li", class_="batch")) == 1

    async def test_same_file_again_adds_nothing(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf, project = await _setup(client, session)
        await _upload(client, project, csrf, jsonl(native_items(3)))
        response = await _upload(client, project, csrf, jsonl(native_items(3)), headers=htmx("batch_panel"))
        assert response.status_code == 200
        assert parse(response.text).by_id("upload-result").text == (
            "All 3 items are already in this project; nothing was added."
        )

    async def test_bad_file_lists_errors_by_line(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf, project = await _setup(client, session)
        records = native_items(4)
        records[1]["responses"] = records[1]["responses"][:1]
        del records[3]["prompt"]
        response = await _upload(client, project, csrf, jsonl(records), headers=htmx("batch_panel"))
        assert response.status_code == 422
        page = parse(response.text)
        refusal = page.find(class_="refusal")
        assert refusal["role"] == "alert"
        assert refusal.find("p").text == (
            "Not imported. The file was refused: 2 error(s). "
            "Nothing was imported; fix the lines listed and upload it again."
        )
        rows = _error_rows(page)
        assert [r[:2] for r in rows] == [["2", "responses"], ["4", "prompt"]]
        assert all(r[2] for r in rows)
        assert await session.scalar(select(func.count()).select_from(Item)) == 0
        assert await session.scalar(select(func.count()).select_from(Batch)) == 0

    async def test_many_errors_show_fifty_and_the_count(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf, project = await _setup(client, session)
        content = b"".join(b'{"id": "x%d"}\n' % i for i in range(60))
        response = await _upload(client, project, csrf, content, format="native")
        assert response.status_code == 422
        page = parse(response.text)
        assert "Showing the first 50 of 60 errors." in [p.text for p in page.find(class_="refusal").find_all("p")]
        rows = _error_rows(page)
        assert len(rows) == 50
        assert rows[0][0] == "1"

    async def test_file_level_error_says_file(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf, project = await _setup(client, session)
        response = await _upload(client, project, csrf, b"not parquet", filename="x.parquet")
        assert response.status_code == 422
        [row] = _error_rows(parse(response.text))
        assert row[:2] == ["file", "(file)"]

    async def test_no_file_chosen(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, csrf, project = await _setup(client, session)
        response = await client.post(
            f"/admin/projects/{project.id}/batches",
            files={"file": ("", b"")},
            data={"csrf_token": csrf},
            headers=htmx("batch_panel"),
        )
        assert response.status_code == 422
        assert parse(response.text).find(class_="refusal").text == "Not imported. Choose a file to upload."

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"format": "yaml"}, "format must be one of native, hh, trl; got 'yaml'."),
            ({"encoding": "xml"}, "encoding must be one of jsonl, csv, parquet; got 'xml'."),
            ({"priority": "high"}, "priority must be a whole number from -1,000,000 to 1,000,000; got 'high'."),
        ],
    )
    async def test_bad_options_refused(
        self, client: httpx.AsyncClient, session: AsyncSession, fields: dict[str, str], message: str
    ) -> None:
        _, csrf, project = await _setup(client, session)
        response = await _upload(client, project, csrf, jsonl(native_items(1)), **fields)
        assert response.status_code == 422
        assert parse(response.text).find(class_="refusal").text == f"Not imported. {message}"

    async def test_missing_csrf_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, _, project = await _setup(client, session)
        response = await client.post(
            f"/admin/projects/{project.id}/batches", files={"file": ("a.jsonl", jsonl(native_items(1)))}
        )
        assert response.status_code == 403
        assert parse(response.text).find("p", class_="lead").text == CSRF_REFUSED
        assert await session.scalar(select(func.count()).select_from(Item)) == 0


class TestSteer:
    async def test_pause_and_resume(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf, project = await _setup(client, session)
        batch_id = await import_items(session, project, admin, native_items(2))
        response = await client.post(
            f"/admin/batches/{batch_id}", data={"status": "paused", "csrf_token": csrf}, headers=htmx("batch_panel")
        )
        assert response.status_code == 200
        panel = parse(response.text)
        assert panel.by_id("upload-result").text == "Batch “items.jsonl” paused."
        assert panel.find("li", class_="batch").find("button").text == "Resume items.jsonl"
        assert set(await session.scalars(select(Item.paused))) == {True}
        response = await client.post(f"/admin/batches/{batch_id}", data={"status": "active", "csrf_token": csrf})
        assert response.status_code == 303
        assert set(await session.scalars(select(Item.paused))) == {False}
        audit = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "batch.update")
        )
        assert audit == 2

    async def test_priority(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf, project = await _setup(client, session)
        batch_id = await import_items(session, project, admin, native_items(2))
        response = await client.post(
            f"/admin/batches/{batch_id}", data={"priority": "7", "csrf_token": csrf}, headers=htmx("batch_panel")
        )
        assert parse(response.text).by_id("upload-result").text == "Batch “items.jsonl” now has priority 7."
        assert set(await session.scalars(select(Item.batch_priority))) == {7}

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"priority": "soon"}, "Priority must be a whole number."),
            ({"priority": "2000000"}, "Priority must be at most 1000000."),
            ({"status": "stopped"}, "Status must be one of active or paused."),
        ],
    )
    async def test_refusals(
        self, client: httpx.AsyncClient, session: AsyncSession, fields: dict[str, str], message: str
    ) -> None:
        admin, csrf, project = await _setup(client, session)
        batch_id = await import_items(session, project, admin, native_items(1))
        response = await client.post(
            f"/admin/batches/{batch_id}", data={**fields, "csrf_token": csrf}, headers=htmx("batch_panel")
        )
        assert response.status_code == 422
        assert parse(response.text).by_id("upload-result").text == message

    async def test_rater_cannot_pause(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin)
        batch_id = await import_items(session, project, admin, native_items(1))
        _, csrf = await login_as(client, session, Role.rater)
        response = await client.post(f"/admin/batches/{batch_id}", data={"status": "paused", "csrf_token": csrf})
        assert response.status_code == 403
        assert set(await session.scalars(select(Item.paused))) == {False}

    async def test_missing_csrf_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, _, project = await _setup(client, session)
        batch_id = await import_items(session, project, admin, native_items(1))
        response = await client.post(f"/admin/batches/{batch_id}", data={"status": "paused"})
        assert response.status_code == 403
        assert parse(response.text).find("p", class_="lead").text == CSRF_REFUSED
