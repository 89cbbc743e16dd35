"""The upload preview: the same parser as the import, nothing written; the detected format named;
the first items as raters will see them (prompt turns, responses); a file that is not JSON Lines
summed up in one sentence (also when it is uploaded for real)."""

import gzip

import httpx
import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.batches.formats import Encoding
from server.batches.formats.records import RowError
from server.batches.preview import not_jsonl_summary
from server.models import Batch, Item
from tests.factories import create_project, jsonl, native_items
from tests.web.admin import htmx, login_as
from tests.web.html import parse

HH = [
    {
        "chosen": "\n\nHuman: What is a good name for a cat?\n\nAssistant: Whiskers.\n\nHuman: Another one?"
        "\n\nAssistant: Mittens is lovely.",
        "rejected": "\n\nHuman: What is a good name for a cat?\n\nAssistant: Whiskers.\n\nHuman: Another one?"
        "\n\nAssistant: No.",
    }
]
NOT_JSONL = (
    "This file is not JSON Lines: none of its lines is a JSON object (it begins with '%PDF-1.7 binary stuff'). "
    "Upload one JSON object per line, or a CSV or Parquet file."
)


async def _send(client: httpx.AsyncClient, url: str, csrf: str, name: str, content: bytes, **form: str):  # type: ignore[no-untyped-def]
    return await client.post(
        url, data={"csrf_token": csrf, **form}, files={"file": (name, content)}, headers=htmx("batch_panel")
    )


class TestPreview:
    async def test_hh_gzipped(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        content = gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in HH * 4))
        url = f"/admin/projects/{project.id}/batches"
        response = await _send(client, url, csrf, "train.jsonl.gz", content, preview="true")
        assert response.status_code == 200
        box = parse(response.text).by_id("upload-preview")
        assert box.find("h2").text == "Preview: HH-RLHF, gzipped JSONL"
        assert "4 items read, no errors: nothing is imported until you press Upload." in box.text
        first = box.find_all("article")[0]
        assert first.find("h4").text == "Prompt: 3 turns"
        roles = [r.text for r in first.find_all("div", class_="msg-role")]
        assert roles[:3] == ["user", "assistant", "user"]
        responses = [
            p.find("div", class_="panel-body").text for p in first.find("div", class_="candidates").find_all("section")
        ]
        assert responses == ["Mittens is lovely.", "No."]
        assert len(box.find_all("article")) == 3
        assert await session.scalar(select(func.count()).select_from(Batch)) == 0
        assert await session.scalar(select(func.count()).select_from(Item)) == 0

    async def test_errors_are_listed_and_nothing_written(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        records = native_items(3)
        records[1]["responses"] = records[1]["responses"][:1]
        url = f"/admin/projects/{project.id}/batches"
        response = await _send(client, url, csrf, "items.jsonl", jsonl(records), preview="true")
        box = parse(response.text).by_id("upload-preview")
        assert box.find("h2").text == "Preview: Native (prompt, responses), JSONL"
        assert "2 items read, 1 error: uploading it now would be refused whole." in box.text
        assert [td.text for td in box.find("tbody").find_all("td")][:2] == ["2", "responses"]

    async def test_not_jsonl(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin, csrf = await login_as(client, session)
        project = await create_project(session, admin)
        content = b"%PDF-1.7 binary stuff\n\x00\x01\x02 more\nand more\n"
        url = f"/admin/projects/{project.id}/batches"
        response = await _send(client, url, csrf, "items.jsonl", content, preview="true")
        box = parse(response.text).by_id("upload-preview")
        assert box.find("p", class_="form-error").text == NOT_JSONL
        refused = await _send(client, url, csrf, "items.jsonl", content)
        assert refused.status_code == 422
        assert (
            parse(refused.text)
            .find("div", class_="refusal")
            .find("p")
            .text.startswith(f"Not imported. The file was refused: {NOT_JSONL} 3 error(s).")
        )


def test_summary_only_when_no_line_is_an_object() -> None:
    errors = [RowError(1, "(line)", "Line 1 is not valid JSON")]
    assert not_jsonl_summary(Encoding.JSONL, items=1, errors=errors, head=b"x") is None
    assert not_jsonl_summary(Encoding.CSV, items=0, errors=errors, head=b"x") is None
    field_error = [RowError(1, "responses", "responses needs two")]
    assert not_jsonl_summary(Encoding.JSONL, items=0, errors=field_error, head=b"{") is None
