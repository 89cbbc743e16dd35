"""kill -9 one of two server processes in the middle of a rater load, through the JSON API and the
rater page: every judgment a client saw acknowledged is stored exactly once, clients that retry on
the other process get the same answer, and the leases held by raters who left with the dead process
run out and are served to others.

Marked slow: it takes at least 30 s, since the shortest lease a project allows is 30 s and the test
waits for the dead process's leases to run out.
"""

import asyncio
import time
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Assignment, Item, Judgment, Role
from tests.factories import PASSWORD, bearer, create_project, create_token, create_user, import_items, native_items
from tests.faults.conftest import page_slots
from tests.web.conftest import csrf_of, page_login

ITEMS, OVERLAP, LEASE_SECONDS = 24, 2, 30
API_RATERS, PAGE_RATERS = 4, 6  # half on each process
KILL_AFTER = 12  # acknowledged judgments before the kill
LEAVING = (0, 2)  # page raters on the victim who leave with it (the others resend to the survivor)
LEAVERS = len(LEAVING)
AUDIT = text(
    """
    SELECT count(*) FROM items i WHERE i.project_id = :p AND (
        i.leased <> (SELECT count(*) FROM assignments a WHERE a.item_id = i.id AND a.status = 'leased')
        OR i.judged <> (SELECT count(*) FROM judgments j WHERE j.item_id = i.id AND NOT j.surplus)
        OR (i.completed_at IS NOT NULL) <> (i.judged >= i.wanted))
    """
)


@dataclass
class Load:
    survivor: str
    project_id: str
    killed: asyncio.Event = field(default_factory=asyncio.Event)
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    api_acknowledged: dict[str, str] = field(default_factory=dict)  # judgment id -> assignment id
    page_acknowledged: list[str] = field(default_factory=list)  # assignment ids answered 200
    cut: int = 0  # requests the kill cut off (or refused), each retried on the survivor
    retried_same: int = 0  # acknowledged verdicts resent to the survivor and answered with the stored one
    abandoned: set[str] = field(default_factory=set)  # leases held by raters who left with the dead process
    cut_judgments: set[str] = field(default_factory=set)  # their verdicts in flight: stored or not, unknown
    errors: list[str] = field(default_factory=list)
    victim_api_acknowledged: set[str] = field(default_factory=set)  # API raters on the victim with a judgment
    leavers_holding: set[str] = field(default_factory=set)  # page raters who will leave, once they hold items

    def count(self) -> int:
        return len(self.api_acknowledged) + len(self.page_acknowledged)


async def api_rater(load: Load, home: str, token: str) -> None:
    """next, judge; a request the kill cuts off is sent again, unchanged, to the survivor."""
    url, auth = home, bearer(token)
    last: tuple[str, dict[str, str], str] | None = None  # (assignment, verdict, judgment id) acknowledged by home
    async with httpx.AsyncClient(timeout=60) as client:

        async def send(path: str, body: dict[str, str] | None = None) -> httpx.Response:
            nonlocal url
            try:
                return await client.post(url + path, json=body, headers=auth)
            except httpx.TransportError:
                if url == load.survivor:
                    raise
                load.cut += 1
                url = load.survivor
                if last is not None:  # the verdict the dead process acknowledged, resent: the same answer
                    assignment, verdict, judgment = last
                    again = await client.post(
                        f"{url}/api/v1/assignments/{assignment}/judgment", json=verdict, headers=auth
                    )
                    if again.status_code != 200 or again.json()["id"] != judgment:
                        load.errors.append(f"resent verdict: {again.status_code} {again.text[:200]}")
                    load.retried_same += 1
                return await client.post(url + path, json=body, headers=auth)

        while not load.complete.is_set():
            leased = await send(f"/api/v1/projects/{load.project_id}/assignments/next")
            if leased.status_code == 204:
                await asyncio.sleep(1)  # leases still out; they may run out and come back
                continue
            if leased.status_code != 200:
                load.errors.append(f"next: {leased.status_code} {leased.text[:200]}")
                return
            assignment = leased.json()
            verdict = {"choice": assignment["item"]["candidates"][0]["id"]}
            judged = await send(f"/api/v1/assignments/{assignment['id']}/judgment", verdict)
            if judged.status_code not in (200, 201) or judged.json()["choice"] != verdict["choice"]:
                load.errors.append(f"judgment: {judged.status_code} {judged.text[:200]}")
                return
            load.api_acknowledged[judged.json()["id"]] = assignment["id"]
            if url == home != load.survivor and not load.killed.is_set():
                last = (assignment["id"], verdict, judged.json()["id"])
                load.victim_api_acknowledged.add(token)


async def page_rater(load: Load, home: str, email: str, *, leaves: bool) -> None:
    """The rater page as rater.js drives it. When the kill cuts a request off, a rater who `leaves`
    closes the tab (the items on it stay leased until they run out); the others resend the same
    request to the survivor."""
    url = home
    async with httpx.AsyncClient(timeout=60) as client:
        try:
            client.base_url = httpx.URL(url)
            await page_login(client, email, PASSWORD)
            page = await client.get(f"/projects/{load.project_id}/label")
        except httpx.TransportError:  # the kill came before this rater's page had loaded: no work lost
            if url == load.survivor or leaves:
                return
            url = load.survivor
            client.base_url = httpx.URL(url)
            await page_login(client, email, PASSWORD)
            page = await client.get(f"/projects/{load.project_id}/label")
        headers = {"HX-Request": "true", "X-CSRF-Token": csrf_of(page.text)}
        held: list[tuple[str, str]] = []

        async def send(path: str, data: dict[str, str] | None = None, judging: str = "") -> httpx.Response | None:
            nonlocal url
            try:
                return await client.post(url + path, data=data, headers=headers)
            except httpx.TransportError:
                if url == load.survivor:
                    raise
                load.cut += 1
                if leaves:
                    load.abandoned.update(a for a, _ in held if a != judging)
                    load.cut_judgments.add(judging)
                    return None
                url = load.survivor
                return await client.post(url + path, data=data, headers=headers)

        while not load.complete.is_set():
            if not held:
                queue = await send(f"/projects/{load.project_id}/label/queue")
                if queue is None:
                    return
                if queue.status_code != 200:
                    load.errors.append(f"queue: {queue.status_code}")
                    return
                held = page_slots(queue.text)
                if held and leaves:
                    load.leavers_holding.add(email)
                if not held:
                    await asyncio.sleep(1)
                    continue
            assignment, choice = held[0]
            ahead = ",".join(a for a, _ in held[1:])
            form = {"verdict": f"c:{choice}:", "ahead": ahead}
            answer = await send(f"/assignments/{assignment}/judge", form, judging=assignment)
            if answer is None:
                return
            if answer.status_code != 200:
                load.errors.append(f"judge: {answer.status_code} {answer.text[:200]}")
                return
            load.page_acknowledged.append(assignment)
            held.pop(0)
            known = {a for a, _ in held}
            held += [slot for slot in page_slots(answer.text) if slot[0] not in known]


@pytest.mark.slow  # waits for the 30 s leases to run out
async def test_kill_9_one_of_two_processes_mid_load(launch, session: AsyncSession) -> None:  # type: ignore[no-untyped-def]
    admin = await create_user(session, role=Role.admin)
    api_raters = [await create_user(session) for _ in range(API_RATERS)]
    page_raters = [await create_user(session) for _ in range(PAGE_RATERS)]
    project = await create_project(
        session, admin, members=(*api_raters, *page_raters), overlap=OVERLAP, lease_seconds=LEASE_SECONDS
    )
    await import_items(session, project, admin, native_items(ITEMS))
    tokens = [await create_token(session, r) for r in api_raters]
    victim, survivor = launch(2)
    load = Load(survivor=survivor.url, project_id=str(project.id))
    homes = [victim.url, survivor.url]

    async def kill_then_watch() -> None:
        # Mid-load, once every API rater on the victim has a verdict it acknowledged, to resend, and the
        # page raters who leave with it hold items (killed before their page loaded, they would leave none).
        give_up = time.monotonic() + 120  # a rater that failed early shows up in load.errors
        while (
            load.count() < KILL_AFTER
            or len(load.victim_api_acknowledged) < API_RATERS // 2
            or len(load.leavers_holding) < LEAVERS
        ):
            if time.monotonic() > give_up:
                break
            await asyncio.sleep(0.01)
        victim.kill()
        load.killed.set()
        deadline = time.monotonic() + LEASE_SECONDS + 45
        while time.monotonic() < deadline:
            open_items = await session.scalar(
                select(func.count()).where(Item.project_id == project.id, Item.completed_at.is_(None))
            )
            await session.commit()
            if open_items == 0:
                break
            await asyncio.sleep(1)
        load.complete.set()

    # A task group, not gather: when one rater fails, the others (and the watcher, which uses the
    # test's session) are cancelled instead of running on into the fixtures' teardown.
    async with asyncio.TaskGroup() as group:
        group.create_task(kill_then_watch())
        for i, t in enumerate(tokens):
            group.create_task(api_rater(load, homes[i % 2], t))
        # On the victim: page raters 0 and 2 leave with it, 4 resends to the survivor.
        for i, r in enumerate(page_raters):
            group.create_task(page_rater(load, homes[i % 2], r.email, leaves=i in LEAVING))

    assert load.errors == []
    assert load.cut > 0  # the kill did cut requests off
    assert load.retried_same > 0  # and a verdict resent to the survivor got the stored one
    # Every acknowledged judgment stored, exactly once.
    per_assignment = {
        str(a): n
        for a, n in await session.execute(select(Judgment.assignment_id, func.count()).group_by(Judgment.assignment_id))
    }
    stored = {str(j): str(a) for j, a in await session.execute(select(Judgment.id, Judgment.assignment_id))}
    for judgment_id, assignment_id in load.api_acknowledged.items():
        assert stored.get(judgment_id) == assignment_id
    for assignment_id in [*load.api_acknowledged.values(), *load.page_acknowledged]:
        assert per_assignment[assignment_id] == 1
    # The leases that left with the dead process ran out and their items were served to others.
    assert load.abandoned
    statuses = dict(
        (str(a), s)
        for a, s in await session.execute(
            select(Assignment.id, Assignment.status).where(Assignment.id.in_(list(load.abandoned)))
        )
    )
    assert set(statuses.values()) == {"expired"}, statuses
    cut = await session.scalars(select(Assignment.status).where(Assignment.id.in_(list(load.cut_judgments - {""}))))
    assert set(cut) <= {"expired", "submitted"}  # a verdict cut off in flight: stored once, or its lease ran out
    assert await session.scalar(select(func.count()).where(Item.completed_at.is_(None))) == 0
    assert await session.scalar(AUDIT, {"p": project.id}) == 0
