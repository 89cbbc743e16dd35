"""The trainer worker as a model judge (`assay worker --judge --judge-token`): it judges the items a
hand-off rule offers to model judges, with its current reward model, probability as confidence."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.client import ApiError, AssayClient
from server.models import Candidate, Item, Judgment, Role
from server.projects import service as projects
from server.projects.schemas import ProjectUpdate
from server.trainer.model import HashedNgrams
from server.trainer.store import Store
from server.trainer.worker import Worker
from tests.factories import create_model, create_token, create_user, import_items
from tests.trainer.test_worker import GOOD, ROOT, Env, items, rate, setup

RULE = {"min_confidence": 0.6, "min_judges": 1, "spot_check_rate": 0.0}


def judging_worker(app: object, env: Env, data_dir: Path, judge_token: str) -> Worker:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return Worker(
        AssayClient("http://testserver", env.trainer, transport=transport),
        Store(data_dir),
        server="http://testserver",
        project_id=str(env.project.id),
        featurizer=HashedNgrams(),
        judge=AssayClient("http://testserver", judge_token, transport=transport),
    )


class TestWorkerJudges:
    async def test_it_judges_the_model_phase_with_its_probability(
        self, app, client, session: AsyncSession, tmp_path: Path
    ) -> None:
        env = await setup(session)
        await rate(client, env, 45)  # humans label first, so there is a model to judge with
        admin = await create_user(session, role=Role.admin)
        model = await create_model(session)
        await projects.add_member(session, env.project, model.id, actor=admin)
        await projects.update_project(
            session, env.project, ProjectUpdate.model_validate({"handoff": RULE}), actor=admin
        )
        await session.commit()
        await import_items(session, env.project, admin, items(20, start=100))
        result = await judging_worker(app, env, tmp_path, await create_token(session, model)).cycle()
        assert result.trained
        assert result.judged == 20
        judgments = list(
            await session.scalars(select(Judgment).where(Judgment.rater_id == model.id).order_by(Judgment.seq))
        )
        assert len(judgments) == 20
        assert all(j.rater_kind == "model" and j.confidence is not None and 0.5 <= j.confidence <= 1 for j in judgments)
        texts = dict((await session.execute(select(Candidate.id, Candidate.text))).all())
        right = sum(texts[j.choice_id].startswith(GOOD) for j in judgments)
        assert right >= 16  # it learned which answer the raters prefer
        new = list(await session.scalars(select(Item).where(Item.external_id >= "q-0100")))
        assert all(i.label_source == "model" or i.handoff_reason for i in new)  # every item was routed

    async def test_without_a_model_it_does_not_judge(self, app, session: AsyncSession, tmp_path: Path) -> None:
        env = await setup(session, n=5, handoff=RULE)
        model = await create_model(session)
        admin = await create_user(session, role=Role.admin)
        await projects.add_member(session, env.project, model.id, actor=admin)
        await session.commit()
        result = await judging_worker(app, env, tmp_path, await create_token(session, model)).cycle()
        assert (result.trained, result.judged) == (False, 0)


class TestTrainerTokenCannotJudge:
    async def test_the_server_refuses_it(self, app, session: AsyncSession) -> None:
        env = await setup(session, n=3, handoff=RULE)
        trainer = AssayClient("http://testserver", env.trainer, transport=httpx.ASGITransport(app=app))
        with pytest.raises(ApiError) as refused:
            await trainer.next_assignment(env.project.id)
        assert refused.value.status_code == 403
        assert (
            str(refused.value.detail) == "This needs the 'judgments:write' scope, which a trainer account cannot have."
        )

    def test_the_cli_wants_a_judge_token(self) -> None:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "server",
                "worker",
                "--url",
                "http://127.0.0.1:9",
                "--token",
                "t",
                "--project",
                "p",
                "--judge",
                "--once",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "COLUMNS": "300"},
        )
        assert done.returncode == 2
        assert "--judge needs --judge-token" in " ".join(done.stdout.split())
