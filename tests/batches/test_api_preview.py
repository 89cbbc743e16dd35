"""The upload preview over the API (POST /projects/{id}/batches/preview): the page's dry run, as JSON."""

import gzip

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Batch, Item, Role
from tests.batches.test_preview import HH, NOT_JSONL
from tests.factories import bearer, create_project, create_token, create_user, jsonl, native_items


async def _setup(session: AsyncSession):  # type: ignore[no-untyped-def]
    admin = await create_user(session, role=Role.admin)
    project = await create_project(session, admin)
    return f"/api/v1/projects/{project.id}/batches/preview", await create_token(session, admin)


async def _nothing_written(session: AsyncSession) -> None:
    assert await session.scalar(select(func.count()).select_from(Batch)) == 0
    assert await session.scalar(select(func.count()).select_from(Item)) == 0


class TestApiPreview:
    async def test_a_gzipped_hh_file(self, client, session) -> None:
        url, token = await _setup(session)
        content = gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in HH * 4))
        response = await client.post(url, files={"file": ("train.jsonl.gz", content)}, headers=bearer(token))
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["format"], body["items"], body["error_count"], body["would_import"]) == (
            "HH-RLHF, gzipped JSONL",
            4,
            0,
            True,
        )
        assert body["message"] == "4 items read, no errors. Nothing was imported."
        assert len(body["first_items"]) == 3
        first = body["first_items"][0]
        assert [t["role"] for t in first["prompt"]] == ["user", "assistant", "user"]
        assert [c["text"] for c in first["candidates"]] == ["Mittens is lovely.", "No."]
        await _nothing_written(session)

    async def test_json_items_with_errors_by_line(self, client, session) -> None:
        url, token = await _setup(session)
        items = native_items(4)
        items[2]["responses"] = items[2]["responses"][:1]
        response = await client.post(url, json={"items": items}, headers=bearer(token))
        assert response.status_code == 200
        body = response.json()
        assert (body["items"], body["error_count"], body["would_import"]) == (3, 1, False)
        assert [(e["line"], e["field"]) for e in body["errors"]] == [(3, "responses")]
        assert body["message"] == "3 items read, 1 error(s): uploading it now would be refused whole."
        await _nothing_written(session)

    async def test_not_jsonl_is_summed_up_first(self, client, session) -> None:
        url, token = await _setup(session)
        content = b"%PDF-1.7 binary stuff\n\x00\x01\x02\n"
        response = await client.post(url, files={"file": ("paper.jsonl", content)}, headers=bearer(token))
        body = response.json()
        assert body["summary"] == NOT_JSONL
        assert body["message"].startswith(NOT_JSONL + " 0 items read, 2 error(s)")
        await _nothing_written(session)

    async def test_the_same_refusals_as_the_upload(self, client, session) -> None:
        url, token = await _setup(session)
        files = {"file": ("a.jsonl", jsonl(native_items(1)))}
        bad = await client.post(url, files=files, data={"format": "yaml"}, headers=bearer(token))
        assert (bad.status_code, bad.json()["detail"]) == (422, "format must be one of native, hh, trl; got 'yaml'.")
        empty = await client.post(url, data={"name": "x"}, files={"other": ("a", b"")}, headers=bearer(token))
        assert (empty.status_code, empty.json()["detail"]) == (422, "Attach the file as the multipart field 'file'.")
        await _nothing_written(session)
