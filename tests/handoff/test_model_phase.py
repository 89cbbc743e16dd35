"""Model accounts and the hand-off routing, through the API and the service."""

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.service import MODEL_LOGIN
from server.handoff.rules import MODELS_DISAGREE, SPOT_CHECK
from server.labeling import service
from server.labeling.handoff import HANDOFF_OFF, NO_RULE
from server.labeling.revisions import MODEL_NOT_REVISABLE
from server.labeling.service import HUMAN_CONFIDENCE
from server.models import Item, Judgment, Project, Role, User
from server.projects import service as projects
from server.projects.schemas import ProjectUpdate
from server.users.service import MODEL_PASSWORD, MODEL_ROLE, PASSWORD_NEEDED
from tests.factories import (
    bearer,
    create_model,
    create_project,
    create_token,
    create_user,
    import_items,
    native_items,
    next_item,
)

SURE = {"min_confidence": 0.8, "min_judges": 1, "spot_check_rate": 0.0}


async def setup(session: AsyncSession, rule: dict[str, Any] | None = SURE, *, models: int = 1, items: int = 1):  # type: ignore[no-untyped-def]
    admin = await create_user(session, role=Role.admin)
    human = await create_user(session)
    judges = [await create_model(session) for _ in range(models)]
    project = await create_project(session, admin, members=(human, *judges), overlap=2, handoff=rule)
    if items:
        await import_items(session, project, admin, native_items(items))
    return admin, human, judges, project


async def judge(
    client: httpx.AsyncClient, project: Project, token: str, *, confidence: float | None, pick: int = 0
) -> httpx.Response:
    leased = await next_item(client, project, token)
    assert leased.status_code == 200, leased.text
    body = leased.json()
    verdict: dict[str, Any] = {"choice": body["item"]["candidates"][pick]["id"]}
    if confidence is not None:
        verdict["confidence"] = confidence
    return await client.post(f"/api/v1/assignments/{body['id']}/judgment", json=verdict, headers=bearer(token))


async def the_item(session: AsyncSession, project: Project) -> Item:
    query = select(Item).where(Item.project_id == project.id).execution_options(populate_existing=True)
    item = await session.scalar(query)
    assert item is not None
    return item


class TestModelAccounts:
    async def test_an_admin_creates_one_without_a_password(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        response = await client.post(
            "/api/v1/users",
            json={"email": "judge@example.com", "role": "rater", "kind": "model"},
            headers=bearer(await create_token(session, admin)),
        )
        assert response.status_code == 201, response.text
        assert (response.json()["kind"], response.json()["role"]) == ("model", "rater")
        judge_account = await session.scalar(select(User).where(User.email == "judge@example.com"))
        assert judge_account is not None
        assert judge_account.password_hash is None

    async def test_refusals(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        headers = bearer(await create_token(session, await create_user(session, role=Role.admin)))
        cases = [
            ({"email": "m1@example.com", "role": "rater", "kind": "model", "password": "long enough"}, MODEL_PASSWORD),
            ({"email": "m2@example.com", "role": "trainer", "kind": "model"}, MODEL_ROLE),
            ({"email": "h@example.com", "role": "rater"}, PASSWORD_NEEDED),
        ]
        for body, message in cases:
            response = await client.post("/api/v1/users", json=body, headers=headers)
            assert (response.status_code, response.json()["detail"]) == (422, message)

    async def test_a_model_gets_no_password_or_other_role_later(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        headers = bearer(await create_token(session, await create_user(session, role=Role.admin)))
        model = await create_model(session)
        for body, message in [({"password": "long enough"}, MODEL_PASSWORD), ({"role": "admin"}, MODEL_ROLE)]:
            response = await client.patch(f"/api/v1/users/{model.id}", json=body, headers=headers)
            assert (response.status_code, response.json()["detail"]) == (422, message)

    async def test_a_model_cannot_log_in(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        model = await create_model(session)
        response = await client.post("/api/v1/auth/session", json={"email": model.email, "password": "anything at all"})
        assert (response.status_code, response.json()["detail"]) == (401, MODEL_LOGIN)

    async def test_its_token_judges_but_holds_nothing_else(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await create_user(session, role=Role.admin)
        model = await create_model(session)
        response = await client.post(
            f"/api/v1/users/{model.id}/tokens",
            json={"name": "judge", "scopes": ["export:read"]},
            headers=bearer(await create_token(session, admin)),
        )
        assert response.status_code == 422
        assert response.json()["detail"].startswith("A rater cannot hold the scope(s) export:read")


class TestConfidence:
    async def test_a_human_sending_one_is_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, human, _, project = await setup(session, None)
        response = await judge(client, project, await create_token(session, human), confidence=0.9)
        assert (response.status_code, response.json()["detail"]) == (422, HUMAN_CONFIDENCE)

    async def test_a_human_revising_with_one_is_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, human, _, project = await setup(session, None)
        token = await create_token(session, human)
        judged = (await judge(client, project, token, confidence=None)).json()
        body = {"choice": str(judged["choice"]), "confidence": 0.7}
        response = await client.patch(f"/api/v1/judgments/{judged['id']}", json=body, headers=bearer(token))
        assert (response.status_code, response.json()["detail"]) == (422, HUMAN_CONFIDENCE)

    async def test_out_of_range_is_refused(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, _, (model,), project = await setup(session)
        response = await judge(client, project, await create_token(session, model), confidence=1.5)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "confidence"


class TestRouting:
    async def test_humans_cannot_lease_before_the_models(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        _, human, _, project = await setup(session)
        assert (await next_item(client, project, await create_token(session, human))).status_code == 204
        assert (await the_item(session, project)).awaiting_models

    async def test_sure_models_resolve_the_item(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, human, (model,), project = await setup(session)
        response = await judge(client, project, await create_token(session, model), confidence=0.93)
        assert response.status_code == 201, response.text
        assert (response.json()["rater_kind"], response.json()["confidence"]) == ("model", 0.93)
        item = await the_item(session, project)
        assert (item.label_source, item.judged, item.model_judged, item.leased) == ("model", 0, 1, 0)
        assert item.completed_at is not None
        assert item.aggregate_revision == 1
        assert (await next_item(client, project, await create_token(session, human))).status_code == 204

    async def test_an_unsure_model_hands_the_item_to_humans(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        _, human, (model,), project = await setup(session)
        await judge(client, project, await create_token(session, model), confidence=0.54)
        item = await the_item(session, project)
        assert (item.awaiting_models, item.handoff_reason, item.label_source) == (False, "p=0.54 < 0.8", None)
        leased = await next_item(client, project, await create_token(session, human))
        assert leased.status_code == 200
        assert (await the_item(session, project)).wanted == 2  # the full overlap: the model counted toward nothing
        assert (await the_item(session, project)).judged == 0

    async def test_disagreeing_models_hand_it_over(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        rule = {**SURE, "min_judges": 2}
        _, _, (m1, m2), project = await setup(session, rule, models=2)
        await judge(client, project, await create_token(session, m1), confidence=0.99, pick=0)
        assert (await the_item(session, project)).awaiting_models  # one of two: still waiting
        t2 = await create_token(session, m2)
        leased = (await next_item(client, project, t2)).json()
        first = await session.scalar(select(Judgment.choice_id).where(Judgment.project_id == project.id))
        other = next(c["id"] for c in leased["item"]["candidates"] if c["id"] != str(first))
        await client.post(
            f"/api/v1/assignments/{leased['id']}/judgment",
            json={"choice": other, "confidence": 0.99},
            headers=bearer(t2),
        )
        item = await the_item(session, project)
        assert (item.awaiting_models, item.handoff_reason, item.model_judged) == (False, MODELS_DISAGREE, 2)

    async def test_a_spot_check_goes_to_humans_anyway(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, human, (model,), project = await setup(session, {**SURE, "spot_check_rate": 1.0})
        await judge(client, project, await create_token(session, model), confidence=0.99)
        item = await the_item(session, project)
        assert (item.awaiting_models, item.spot_check, item.handoff_reason) == (False, True, SPOT_CHECK)
        assert (await next_item(client, project, await create_token(session, human))).status_code == 200

    async def test_a_model_gets_nothing_twice_and_nothing_handed_over(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        _, _, (model,), project = await setup(session)
        token = await create_token(session, model)
        await judge(client, project, token, confidence=0.3)
        assert (await next_item(client, project, token)).status_code == 204

    async def test_a_model_in_a_project_without_the_rule_is_told_why(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        _, _, (model,), project = await setup(session, None)
        response = await next_item(client, project, await create_token(session, model))
        assert (response.status_code, response.json()["detail"]) == (409, NO_RULE.format(name=project.name))

    async def test_gold_items_never_wait_for_models(self, session: AsyncSession) -> None:
        admin, _, _, project = await setup(session, items=0)
        record = native_items(1, prefix="g")[0]
        await import_items(session, project, admin, [{**record, "gold": {"preferred": 0}}])
        assert not (await the_item(session, project)).awaiting_models

    async def test_a_model_gets_gold_items_at_the_gold_rate(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin, _, (model,), project = await setup(session, items=0)
        record = native_items(1, prefix="g")[0]
        await import_items(session, project, admin, [{**record, "gold": {"preferred": 0}}])
        await import_items(session, project, admin, native_items(1))
        await projects.update_project(session, project, ProjectUpdate(gold_rate=1.0), actor=admin)
        await session.commit()
        token = await create_token(session, model)
        leased = (await next_item(client, project, token)).json()
        assert leased["item"]["external_id"] == "g-0"  # gold first, as for any rater
        first = min(leased["item"]["candidates"], key=lambda c: c["text"])["id"]  # upload position 0
        body = {"choice": first, "confidence": 0.9}
        answer = await client.post(f"/api/v1/assignments/{leased['id']}/judgment", json=body, headers=bearer(token))
        assert answer.status_code == 201
        stored = await session.scalar(select(Judgment).where(Judgment.rater_id == model.id))
        assert stored is not None
        assert (stored.gold, stored.surplus, stored.rater_kind) == (True, False, "model")
        query = select(Item).where(Item.external_id == "item-0").execution_options(populate_existing=True)
        item = await session.scalar(query)  # the ordinary item is still waiting for the model
        assert item is not None
        assert (item.awaiting_models, item.model_judged) == (True, 0)

    async def test_a_models_verdict_cannot_be_revised(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        _, _, (model,), project = await setup(session)
        token = await create_token(session, model)
        judged = (await judge(client, project, token, confidence=0.9)).json()
        body = {"choice": str(judged["choice"]), "confidence": 0.5}
        response = await client.patch(f"/api/v1/judgments/{judged['id']}", json=body, headers=bearer(token))
        assert (response.status_code, response.json()["detail"]) == (409, MODEL_NOT_REVISABLE)


class TestChangingTheRule:
    async def test_turning_it_off_opens_held_items_to_humans(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin, human, _, project = await setup(session, items=3)
        response = await client.patch(
            f"/api/v1/projects/{project.id}", json={"handoff": None}, headers=bearer(await create_token(session, admin))
        )
        assert response.status_code == 200, response.text
        assert response.json()["handoff"] is None
        query = select(Item).where(Item.project_id == project.id).execution_options(populate_existing=True)
        items = list(await session.scalars(query))
        assert {(i.awaiting_models, i.handoff_reason) for i in items} == {(False, HANDOFF_OFF)}
        assert (await next_item(client, project, await create_token(session, human))).status_code == 200

    async def test_a_lowered_min_judges_routes_items_that_have_enough(self, session: AsyncSession) -> None:
        admin, _, (m1, _), project = await setup(session, {**SURE, "min_judges": 2}, models=2)
        leased = await service.next_assignment(session, project=project, rater=m1)
        assert leased is not None
        data = service.JudgmentCreate(choice=leased.candidates[0].id, confidence=0.95)
        await service.submit(session, assignment_id=leased.assignment.id, rater=m1, data=data)
        await session.commit()
        await projects.update_project(session, project, ProjectUpdate.model_validate({"handoff": SURE}), actor=admin)
        await session.commit()
        assert (await the_item(session, project)).label_source == "model"

    async def test_the_rule_is_validated(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        admin = await create_user(session, role=Role.admin)
        project = await create_project(session, admin)
        headers = bearer(await create_token(session, admin))
        for bad, field in [
            ({"min_judges": 0}, "handoff.min_judges"),
            ({"min_confidence": 1.2}, "handoff.min_confidence"),
            ({"spot_check_rate": -0.1}, "handoff.spot_check_rate"),
            ({"threshold": 0.8}, "handoff.threshold"),
        ]:
            response = await client.patch(f"/api/v1/projects/{project.id}", json={"handoff": bad}, headers=headers)
            assert response.status_code == 422, bad
            assert response.json()["errors"][0]["field"] == field
