import gzip
import io
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Batch, Candidate, Item, Project, Role
from tests.factories import bearer, create_project, create_token, create_user, jsonl, native_items

HH_FILE = Path(__file__).resolve().parents[3] / "shared" / "data" / "hh-rlhf" / "harmless-base" / "test-shared.jsonl.gz"


@pytest.fixture
async def admin_setup(session: AsyncSession) -> tuple[Project, str]:
    admin = await create_user(session, role=Role.admin)
    project = await create_project(session, admin, overlap=2)
    return project, await create_token(session, admin)


async def upload(
    client: httpx.AsyncClient,
    project: Project,
    token: str,
    content: bytes,
    filename: str = "items.jsonl",
    **fields: str,
) -> httpx.Response:
    return await client.post(
        f"/api/v1/projects/{project.id}/batches",
        files={"file": (filename, content)},
        data=fields,
        headers=bearer(token),
    )


async def count(session: AsyncSession, model: type) -> int:
    return await session.scalar(select(func.count()).select_from(model)) or 0


class TestUpload:
    async def test_native_jsonl_imports(self, client, admin_setup, session) -> None:
        project, token = admin_setup
        response = await upload(client, project, token, jsonl(native_items(10)), name="first")
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["created"], body["skipped_existing"]) == (10, 0)
        assert body["message"] == "Imported 10 items."
        batch = await session.get(Batch, body["id"])
        assert (batch.name, batch.item_count) == ("first", 10)
        assert await count(session, Candidate) == 20
        items = (await session.scalars(select(Item).order_by(Item.seq))).all()
        assert [i.external_id for i in items] == [f"item-{i}" for i in range(10)]
        assert all(i.wanted == 2 for i in items)

    async def test_same_file_again_adds_nothing(self, client, admin_setup, session) -> None:
        project, token = admin_setup
        content = jsonl(native_items(5))
        await upload(client, project, token, content)
        again = await upload(client, project, token, content)
        assert again.status_code == 200
        assert again.json() == {
            "id": None,
            "created": 0,
            "skipped_existing": 5,
            "message": "All 5 items are already in this project; nothing was added.",
        }
        assert (await count(session, Item), await count(session, Batch)) == (5, 1)

    async def test_overlapping_file_adds_only_new(self, client, admin_setup, session) -> None:
        project, token = admin_setup
        await upload(client, project, token, jsonl(native_items(5)))
        response = await upload(client, project, token, jsonl(native_items(8)))
        assert (response.json()["created"], response.json()["skipped_existing"]) == (3, 5)
        assert response.json()["message"] == "Imported 3 items. 5 items were already in this project and were skipped."

    async def test_same_ids_in_another_project_are_separate(self, client, admin_setup, session) -> None:
        project, token = admin_setup
        other = await create_project(session, await create_user(session, role=Role.admin), name="Other")
        await upload(client, project, token, jsonl(native_items(3)))
        response = await upload(client, other, token, jsonl(native_items(3)))
        assert response.json()["created"] == 3

    async def test_duplicate_ids_inside_file_refused_whole(self, client, admin_setup, session) -> None:
        project, token = admin_setup
        records = native_items(4)
        records[3]["id"] = "item-1"
        response = await upload(client, project, token, jsonl(records))
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {
                "line": 4,
                "field": "id",
                "message": "id 'item-1' is used again; it first appears on line 2. "
                "Ids must be unique within a project.",
            }
        ]
        assert response.json()["error_count"] == 1
        assert await count(session, Item) == 0

    async def test_bad_line_refuses_whole_file(self, client, admin_setup, session) -> None:
        project, token = admin_setup
        content = jsonl(native_items(3)) + b"{not json\n" + jsonl(native_items(2, start=10))
        response = await upload(client, project, token, content)
        assert response.status_code == 422
        body = response.json()
        assert body["detail"] == (
            "The file was refused: 1 error(s). Nothing was imported; fix the lines listed and upload it again."
        )
        assert body["errors"][0]["line"] == 4
        assert (await count(session, Item), await count(session, Batch)) == (0, 0)

    async def test_errors_listed_up_to_fifty_with_count(self, client, admin_setup) -> None:
        project, token = admin_setup
        response = await upload(client, project, token, b"[]\n" * 70)
        body = response.json()
        assert body["error_count"] == 70
        assert len(body["errors"]) == 50
        assert [e["line"] for e in body["errors"][:3]] == [1, 2, 3]

    async def test_empty_file_refused(self, client, admin_setup) -> None:
        project, token = admin_setup
        response = await upload(client, project, token, b"\n\n")
        assert response.status_code == 422
        assert response.json()["detail"] == "The file holds no items."

    async def test_too_large_is_413(self, client, admin_setup, monkeypatch) -> None:
        from server import app as app_module

        project, token = admin_setup
        response = await client.post(
            f"/api/v1/projects/{project.id}/batches",
            content=b"x" * 10,
            headers={
                **bearer(token),
                "Content-Type": "multipart/form-data; boundary=b",
                "Content-Length": str(10 << 30),
            },
        )
        assert response.status_code == 413
        limit_mb = app_module.settings.max_upload_bytes // (1024 * 1024)
        assert response.json()["detail"] == (
            f"The upload is larger than the {limit_mb} MB limit; split it into several batches."
        )

    async def test_json_upload_has_its_own_limit(self, client, admin_setup) -> None:
        project, token = admin_setup
        response = await client.post(
            f"/api/v1/projects/{project.id}/batches",
            content=b"x" * 10,
            headers={**bearer(token), "Content-Type": "application/json", "Content-Length": str(10 << 30)},
        )
        assert response.status_code == 413
        assert response.json()["detail"] == (
            "A JSON upload may be at most 8 MB (ASSAY_MAX_JSON_UPLOAD_BYTES); send a larger batch as a file "
            "(multipart field 'file', JSONL)."
        )

    async def test_unknown_format_param(self, client, admin_setup) -> None:
        project, token = admin_setup
        response = await upload(client, project, token, jsonl(native_items(1)), format="yaml")
        assert response.status_code == 422
        assert response.json()["detail"] == "format must be one of native, hh, trl; got 'yaml'."

    async def test_missing_file_field(self, client, admin_setup) -> None:
        project, token = admin_setup
        response = await client.post(
            f"/api/v1/projects/{project.id}/batches",
            data={"name": "x"},
            files={"other": ("a", b"b")},
            headers=bearer(token),
        )
        assert response.status_code == 422
        assert response.json()["detail"] == "Attach the file as the multipart field 'file'."

    async def test_json_body_imports(self, client, admin_setup) -> None:
        project, token = admin_setup
        response = await client.post(
            f"/api/v1/projects/{project.id}/batches",
            json={"name": "posted", "items": native_items(3)},
            headers=bearer(token),
        )
        assert response.status_code == 201
        assert response.json()["created"] == 3

    async def test_csv_imports(self, client, admin_setup, session) -> None:
        project, token = admin_setup
        content = b'id,prompt,response_1,response_2\nc1,"Say hi","Hi!",""\nc2,"2+2?","4","5"\n'
        response = await upload(client, project, token, content, filename="items.csv")
        assert response.status_code == 201, response.text
        texts = (await session.scalars(select(Candidate.text).order_by(Candidate.text))).all()
        assert sorted(texts) == ["", "4", "5", "Hi!"]

    async def test_parquet_imports(self, client, admin_setup) -> None:
        project, token = admin_setup
        table = pa.Table.from_pylist([{"id": "p1", "prompt": "Q?", "chosen": "good", "rejected": "bad"}])
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        response = await upload(client, project, token, buffer.getvalue(), filename="pairs.parquet")
        assert response.status_code == 201, response.text

    async def test_trl_conversational_imports(self, client, admin_setup, session) -> None:
        project, token = admin_setup
        record = {
            "prompt": [{"role": "user", "content": "Hi"}],
            "chosen": [{"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "assistant", "content": "Go away."}],
        }
        response = await upload(client, project, token, jsonl([record]), format="trl")
        assert response.status_code == 201, response.text
        item = await session.scalar(select(Item))
        assert item.prompt == [{"role": "user", "content": "Hi"}]
        assert item.external_id.startswith("sha256:")

    async def test_rater_cannot_upload(self, client, admin_setup, session) -> None:
        project, _ = admin_setup
        rater = await create_user(session)
        response = await upload(client, project, await create_token(session, rater), jsonl(native_items(1)))
        assert response.status_code == 403
        assert response.json()["detail"] == "This needs the 'items:write' scope, which a rater account cannot have."

    @pytest.mark.skipif(not HH_FILE.exists(), reason="HH-RLHF sample not present (../shared/data is only on CI)")
    async def test_real_hh_rlhf_file_imports_whole(self, client, admin_setup, session) -> None:
        project, token = admin_setup
        content = HH_FILE.read_bytes()
        response = await upload(client, project, token, content, filename=HH_FILE.name, format="hh")
        assert response.status_code == 201, response.text[:2000]
        rows = len(gzip.decompress(content).splitlines())
        assert response.json()["created"] + response.json()["skipped_existing"] == rows
        assert await count(session, Candidate) == 2 * response.json()["created"]


class TestSteer:
    async def test_priority_change_moves_items(self, client, admin_setup, session) -> None:
        project, token = admin_setup
        created = await upload(client, project, token, jsonl(native_items(2)))
        response = await client.patch(
            f"/api/v1/batches/{created.json()['id']}", json={"priority": 7}, headers=bearer(token)
        )
        assert response.status_code == 200
        assert response.json()["priority"] == 7
        assert set((await session.scalars(select(Item.batch_priority))).all()) == {7}

    async def test_list_shows_progress(self, client, admin_setup) -> None:
        project, token = admin_setup
        await upload(client, project, token, jsonl(native_items(2)))
        response = await client.get(f"/api/v1/projects/{project.id}/batches", headers=bearer(token))
        assert response.status_code == 200
        assert response.json()[0]["item_count"] == 2
        assert response.json()[0]["completed_items"] == 0


class TestUploadLimit:
    async def test_chunked_upload_over_limit_is_413(self, admin_setup, engine, sessionmaker, monkeypatch) -> None:
        from server.app import create_app
        from server.config import settings

        monkeypatch.setattr(settings, "max_upload_bytes", 1024 * 1024)
        app = create_app(database_url="unused")
        app.state.engine, app.state.sessionmaker = engine, sessionmaker
        project, token = admin_setup

        async def body():  # no Content-Length: the server must count as it reads
            for _ in range(3):
                yield b"x" * (600 * 1024)

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            response = await client.post(
                f"/api/v1/projects/{project.id}/batches",
                content=body(),
                headers={**bearer(token), "Content-Type": "application/json"},
            )
        assert response.status_code == 413
        assert response.json()["detail"] == "The upload is larger than the 1 MB limit; split it into several batches."
