"""Exports read by their real consumers: Hugging Face `datasets`, and TRL's own format helpers.

TRL is an optional test dependency (`make setup` installs it without PyTorch); the TRL checks
skip where it is absent, the `datasets` checks always run.
"""

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Role, Scope
from tests.exports.test_api import export_response, rate_all
from tests.factories import create_project, create_token, create_user, import_items, native_items

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
datasets = pytest.importorskip("datasets")

try:
    from trl.data_utils import is_conversational
except ImportError:  # TRL is optional
    is_conversational = None

COLUMNS = {
    "trl": {"prompt", "chosen", "rejected"},
    "trl-unpaired": {"prompt", "completion", "label"},
    "openai": {"input", "preferred_output", "non_preferred_output"},
    "hh": {"chosen", "rejected"},
}


def chat_items(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"chat-{i}",
            "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Question {i}?"}],
            "responses": [
                {"text": f"Short answer {i}."},
                {"messages": [{"role": "assistant", "content": f"Long {i}"}]},
            ],
        }
        for i in range(n)
    ]


async def judged_project(session: AsyncSession, client, *, chat: bool):  # type: ignore[no-untyped-def]
    admin = await create_user(session, role=Role.admin)
    rater = await create_user(session)
    trainer = await create_user(session, role=Role.trainer)
    project = await create_project(session, admin, members=(rater, trainer), scale="4-point")
    await import_items(session, project, admin, chat_items(4) if chat else native_items(4))
    await rate_all(client, project, await create_token(session, rater), strength=2)
    return project, await create_token(session, trainer, Scope.export_read)


def load(tmp_path: Path, body: bytes, encoding: str):  # type: ignore[no-untyped-def]
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / f"export.{encoding}"
    path.write_bytes(body)
    builder = "json" if encoding == "jsonl" else "parquet"
    return datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))


@pytest.mark.parametrize("chat", [False, True], ids=["text", "chat"])
@pytest.mark.parametrize("encoding", ["jsonl", "parquet"])
@pytest.mark.parametrize("fmt", sorted(COLUMNS))
async def test_datasets_loads_every_format(client, session, tmp_path, fmt: str, encoding: str, chat: bool) -> None:
    project, trainer = await judged_project(session, client, chat=chat)
    response = await export_response(client, project, trainer, format=fmt, encoding=encoding)
    assert response.status_code == 200, response.text
    dataset = load(tmp_path, response.content, encoding)
    assert set(dataset.column_names) == COLUMNS[fmt]
    assert len(dataset) == (8 if fmt == "trl-unpaired" else 4)
    if fmt in ("trl", "trl-unpaired") and is_conversational is not None:
        assert all(is_conversational(row) == chat for row in dataset)


@pytest.mark.parametrize("encoding", ["jsonl", "parquet"])
async def test_trl_margin_column_loads(client, session, tmp_path, encoding: str) -> None:
    project, trainer = await judged_project(session, client, chat=False)
    response = await export_response(client, project, trainer, margin="true", encoding=encoding)
    dataset = load(tmp_path, response.content, encoding)
    assert dataset.column_names == ["prompt", "chosen", "rejected", "margin"]
    assert dataset["margin"] == [1.0] * 4


@pytest.mark.skipif(is_conversational is None, reason="TRL is not installed (optional test dependency)")
async def test_trl_unpairs_our_pairs_like_our_unpaired_export(client, session, tmp_path) -> None:
    from trl.data_utils import unpair_preference_dataset

    project, trainer = await judged_project(session, client, chat=True)
    paired = load(tmp_path, (await export_response(client, project, trainer)).content, "jsonl")
    ours = load(
        tmp_path / "u", (await export_response(client, project, trainer, format="trl-unpaired")).content, "jsonl"
    )
    theirs = unpair_preference_dataset(paired)
    assert sorted(map(str, theirs)) == sorted(map(str, ours))
