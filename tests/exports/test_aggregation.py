"""Item labels weighted by rater reliability, trusted raters and gold items in exports (issue 10).

Parameters: `aggregation=majority|weighted`, `raters=all|trusted`, `gold=include`; each is bound
into the signed cursor, and each contradiction is refused with a sentence.
"""

import io
from typing import Any

import httpx
import orjson
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.exports import cursors
from server.models import Item, ProjectMember, QualitySnapshot, Role, Scope
from server.quality import service as quality
from server.quality.weighted import CACHE_NAME
from tests.factories import bearer, create_project, create_token, create_user, import_items, native_items, next_item

ITEM_FORMATS = ["trl", "trl-unpaired", "openai", "hh"]


async def rate_all_by_answer(client: httpx.AsyncClient, project, token: str, answer: int) -> int:  # type: ignore[no-untyped-def]
    """Judge every item served, choosing the candidate uploaded at index `answer` ("Answer {answer} to ...")."""
    done = 0
    while (response := await next_item(client, project, token)).status_code == 200:
        a = response.json()
        choice = next(c["id"] for c in a["item"]["candidates"] if c["text"].startswith(f"Answer {answer} "))
        posted = await client.post(
            f"/api/v1/assignments/{a['id']}/judgment", json={"choice": choice}, headers=bearer(token)
        )
        assert posted.status_code == 201, posted.text
        done += 1
    return done


async def pull(client: httpx.AsyncClient, project, token: str, **params: Any) -> httpx.Response:  # type: ignore[no-untyped-def]
    return await client.get(f"/api/v1/projects/{project.id}/export", params=params, headers=bearer(token))


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines()]


def refusal(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    detail: str = response.json()["detail"]
    return detail


class Crowd:
    """Three raters at overlap 3 on `n` items: two choose the first answer, one always the second."""

    async def make(self, client: httpx.AsyncClient, session: AsyncSession, n: int = 4, gold: int = 0) -> None:
        self.admin = await create_user(session, role=Role.admin)
        self.raters = [await create_user(session) for _ in range(3)]
        trainer = await create_user(session, role=Role.trainer)
        self.project = await create_project(session, self.admin, members=(*self.raters, trainer), overlap=3)
        records = native_items(n)
        for record in native_items(gold, prefix="g"):
            records.append(record | {"gold": {"preferred": 1}})
        await import_items(session, self.project, self.admin, records)
        self.tokens = [await create_token(session, r) for r in self.raters]
        self.trainer = await create_token(session, trainer, Scope.export_read)
        for token, answer in zip(self.tokens, (0, 0, 1), strict=True):
            await rate_all_by_answer(client, self.project, token, answer)

    async def suspend(self, session: AsyncSession, index: int) -> None:
        await session.execute(
            update(ProjectMember)
            .where(ProjectMember.project_id == self.project.id, ProjectMember.user_id == self.raters[index].id)
            .values(suspended_at=func.now(), suspended_reason="test")
        )
        await session.commit()


@pytest.fixture
async def crowd(client: httpx.AsyncClient, session: AsyncSession) -> Crowd:
    made = Crowd()
    await made.make(client, session)
    return made


class TestWeighted:
    async def test_every_item_format_carries_the_confidence(self, client, crowd: Crowd) -> None:
        for fmt in ITEM_FORMATS:
            rows = lines(
                await pull(client, crowd.project, crowd.trainer, granularity="item", aggregation="weighted", format=fmt)
            )
            assert len(rows) == 4 * (2 if fmt == "trl-unpaired" else 1), fmt
            assert all(0.9 < row["confidence"] <= 1.0 for row in rows), fmt
            majority = lines(await pull(client, crowd.project, crowd.trainer, granularity="item", format=fmt))
            assert majority, fmt
            assert all("confidence" not in row for row in majority), fmt

    async def test_the_dissenting_rater_weighs_less_than_a_third(self, client, crowd: Crowd) -> None:
        """Majority agreement is 2/3 per item; the fitted model trusts the two who agree more."""
        [row, *_] = lines(
            await pull(client, crowd.project, crowd.trainer, granularity="item", format="raw", aggregation="weighted")
        )
        [vote] = row["pairs"]
        assert vote["agreement"] == pytest.approx(2 / 3, abs=1e-3)
        [pair] = row["weighted"]
        assert pair["label"] == "a"
        assert pair["votes"] == 3
        assert pair["confidence"] > 0.9
        assert sum(pair["posterior"]) == pytest.approx(1.0)
        chosen = lines(
            await pull(client, crowd.project, crowd.trainer, granularity="item", format="trl", aggregation="weighted")
        )
        assert all(r["chosen"].startswith("Answer 0 ") for r in chosen)

    async def test_parquet_has_the_columns(self, client, crowd: Crowd) -> None:
        for fmt in [*ITEM_FORMATS, "raw"]:
            response = await pull(
                client,
                crowd.project,
                crowd.trainer,
                granularity="item",
                aggregation="weighted",
                format=fmt,
                encoding="parquet",
            )
            assert response.status_code == 200, response.text
            table = pq.read_table(io.BytesIO(response.content))
            assert ("weighted" if fmt == "raw" else "confidence") in table.column_names, fmt
            assert table.num_rows == (8 if fmt == "trl-unpaired" else 4), fmt

    async def test_the_rater_model_is_fitted_once_per_data_version(self, client, session, crowd: Crowd) -> None:
        computed = select(QualitySnapshot.computed_at).where(
            QualitySnapshot.project_id == crowd.project.id, QualitySnapshot.name == CACHE_NAME
        )
        lines(await pull(client, crowd.project, crowd.trainer, granularity="item", aggregation="weighted"))
        first = await session.scalar(computed)
        assert first is not None
        await session.commit()
        lines(await pull(client, crowd.project, crowd.trainer, granularity="item", aggregation="weighted", format="hh"))
        assert await session.scalar(computed) == first


class TestRefusals:
    REFUSED: tuple[tuple[dict[str, str], str], ...] = (
        (
            {"aggregation": "weighted"},
            "aggregation=weighted labels each item from its raters' judgments: add granularity=item or drop "
            "aggregation.",
        ),
        (
            {"aggregation": "weighted", "granularity": "item", "min_agreement": "0.5"},
            "min_agreement filters majority votes; with aggregation=weighted each row has a confidence column "
            "to filter on instead: drop min_agreement.",
        ),
        (
            {"gold": "include"},
            "gold=include adds gold items to item-granularity exports (per-judgment exports already carry "
            "gold judgments): add granularity=item or drop gold.",
        ),
        (
            {"gold": "include", "completed": "true"},
            "gold=include adds gold items to item-granularity exports (per-judgment exports already carry "
            "gold judgments): add granularity=item or drop gold.",
        ),
    )

    async def test_contradictions_are_refused(self, client, crowd: Crowd) -> None:
        for params, message in self.REFUSED:
            assert refusal(await pull(client, crowd.project, crowd.trainer, **params), 422) == message

    async def test_a_cursor_is_bound_to_the_new_parameters(self, client, crowd: Crowd) -> None:
        assert cursors.OTHER_FILTERS == (
            "This cursor belongs to an export with other filters (granularity, batch_id, completed, since, until, "
            "min_agreement, aggregation, raters, gold, judges): repeat that export's filters, or start again "
            "without after."
        )
        item = {"granularity": "item"}
        for changed in ({"aggregation": "weighted"}, {"raters": "trusted"}, {"gold": "include"}):
            for first, second in ((changed, {}), ({}, changed)):
                cursor = (await pull(client, crowd.project, crowd.trainer, **item, **first)).headers[
                    "Assay-Next-Cursor"
                ]
                response = await pull(client, crowd.project, crowd.trainer, **item, **second, after=cursor)
                assert refusal(response, 422) == cursors.OTHER_FILTERS, (first, second)
                same = await pull(client, crowd.project, crowd.trainer, **item, **first, format="hh", after=cursor)
                assert same.status_code == 200

    async def test_defaults_spelt_out_keep_the_cursor_of_an_export_without_them(self, client, crowd: Crowd) -> None:
        cursor = (await pull(client, crowd.project, crowd.trainer, granularity="item")).headers["Assay-Next-Cursor"]
        response = await pull(
            client,
            crowd.project,
            crowd.trainer,
            granularity="item",
            aggregation="majority",
            raters="all",
            gold="exclude",
            after=cursor,
        )
        assert response.status_code == 200

    async def test_unknown_values_are_refused(self, client, crowd: Crowd) -> None:
        for name in ("aggregation", "raters", "gold"):
            response = await pull(client, crowd.project, crowd.trainer, **{name: "sometimes"})
            assert response.status_code == 422


class TestTrustedRaters:
    async def test_per_judgment_exports_mark_and_drop_a_suspended_rater(self, client, session, crowd: Crowd) -> None:
        before = lines(await pull(client, crowd.project, crowd.trainer, format="raw", raters="trusted"))
        assert len(before) == 12
        await crowd.suspend(session, 2)
        everyone = lines(await pull(client, crowd.project, crowd.trainer, format="raw"))
        assert len(everyone) == 12
        assert sorted(r["rater_trusted"] for r in everyone) == [False] * 4 + [True] * 8
        trusted = lines(await pull(client, crowd.project, crowd.trainer, format="raw", raters="trusted"))
        assert len(trusted) == 8
        assert all(r["rater_trusted"] for r in trusted)
        assert len(lines(await pull(client, crowd.project, crowd.trainer, raters="trusted"))) == 8

    async def test_rows_already_delivered_are_not_retracted(self, client, session, crowd: Crowd) -> None:
        first = await pull(client, crowd.project, crowd.trainer, format="raw", raters="trusted")
        assert len(lines(first)) == 12
        await crowd.suspend(session, 2)
        later = await pull(
            client,
            crowd.project,
            crowd.trainer,
            format="raw",
            raters="trusted",
            after=first.headers["Assay-Next-Cursor"],
        )
        assert lines(later) == []

    async def test_item_exports_aggregate_trusted_judgments_only(self, client, session, crowd: Crowd) -> None:
        await crowd.suspend(session, 0)
        rows = lines(
            await pull(client, crowd.project, crowd.trainer, granularity="item", format="raw", raters="trusted")
        )
        assert {r["judgments"] for r in rows} == {2}
        assert {r["pairs"][0]["majority"] for r in rows} == {False}  # one for each side: no majority
        assert lines(await pull(client, crowd.project, crowd.trainer, granularity="item", raters="trusted")) == []
        everyone = lines(await pull(client, crowd.project, crowd.trainer, granularity="item", format="raw"))
        assert {r["judgments"] for r in everyone} == {3}

    async def test_weighted_and_trusted_together(self, client, session, crowd: Crowd) -> None:
        await crowd.suspend(session, 2)
        rows = lines(
            await pull(
                client,
                crowd.project,
                crowd.trainer,
                granularity="item",
                format="raw",
                aggregation="weighted",
                raters="trusted",
            )
        )
        assert {r["weighted"][0]["votes"] for r in rows} == {2}


class TestGoldItems:
    async def test_gold_items_are_left_out_unless_included(self, client, session) -> None:
        crowd = Crowd()
        await crowd.make(client, session, n=3, gold=2)
        default = lines(await pull(client, crowd.project, crowd.trainer, granularity="item", format="raw"))
        assert sorted(r["external_id"] for r in default) == ["item-0", "item-1", "item-2"]
        included = lines(
            await pull(client, crowd.project, crowd.trainer, granularity="item", format="raw", gold="include")
        )
        assert sorted(r["external_id"] for r in included) == ["g-0", "g-1", "item-0", "item-1", "item-2"]
        gold_rows = [r for r in included if r["external_id"].startswith("g-")]
        assert all(r["gold"] == {"preferred": 1} for r in gold_rows)
        assert all(r["gold"] is None for r in included if r["external_id"].startswith("item-"))

    @pytest.mark.parametrize("aggregation", ["majority", "weighted"])
    async def test_a_gold_item_is_labelled_by_its_answer(self, client, session, aggregation: str) -> None:
        crowd = Crowd()
        await crowd.make(client, session, n=2, gold=1)
        rows = lines(
            await pull(
                client, crowd.project, crowd.trainer, granularity="item", gold="include", aggregation=aggregation
            )
        )
        [gold] = [r for r in rows if r["prompt"].startswith("Question number 0?") and r["chosen"] == "Answer 1 to 0"]
        if aggregation == "weighted":
            assert gold["confidence"] == 1.0
        assert len(rows) == 3

    async def test_an_item_made_gold_after_completing_leaves_default_exports(
        self, client, session, crowd: Crowd
    ) -> None:
        item = await session.scalar(
            select(Item).where(Item.project_id == crowd.project.id, Item.external_id == "item-0")
        )
        assert item is not None
        first = await pull(client, crowd.project, crowd.trainer, granularity="item", gold="include")
        assert len(lines(first)) == 4
        await quality.set_gold(session, crowd.project, item.id, {"preferred": 1})
        await session.commit()
        default = lines(await pull(client, crowd.project, crowd.trainer, granularity="item", format="raw"))
        assert "item-0" not in {r["external_id"] for r in default}
        again = await pull(
            client,
            crowd.project,
            crowd.trainer,
            granularity="item",
            gold="include",
            ids="true",
            after=first.headers["Assay-Next-Cursor"],
        )
        [row] = lines(again)
        assert (row["item_id"], row["aggregate_revision"]) == (str(item.id), 2)
        assert row["chosen"] == "Answer 1 to 0"
