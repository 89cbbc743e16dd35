"""The demo's assistance experiment: our demo items with planted flaws and critiques, and simulated raters.

Built from `demo.jsonl` (the shipped demo data): on some items the weaker response carries a flaw
planted on purpose (`PLANTED`: a quoted passage and what is wrong with it); critiques (`CRITIQUES`)
point at some of those flaws, miss others, and a few are wrong (they blame the better response).
The project runs assistance as an experiment (ratio 0.5), and simulated raters (`SIMULATED`, two
experts and six novices, a group each) judge every item through the real lease and submit, so the
server randomises the arms as it does for people. A simulated rater prefers the flawed response
unless they catch the flaw: with chance `CATCH["unassisted"]` alone, more when a right critique
points at it, less when a wrong critique blames the other response; experts catch more. A rater
who catches a flaw marks it half of the time (a span overlapping the planted one, sent with the
verdict). The demo rater is a member too, with items left for them (overlap is one more than the
simulated raters), so the report fills in as they judge.
"""

import io
import random
import secrets
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.batches import service as batches
from server.batches.formats import Encoding, ImportFormat
from server.critiques.schemas import FlawCreate
from server.labeling import service as labeling
from server.labeling.schemas import JudgmentCreate
from server.models import Assistance, Candidate, PlantedFlaw, Project, Role, Scale, Severity, User
from server.projects import service as projects
from server.projects.schemas import MemberUpdate, ProjectCreate
from server.users import service as users
from server.users.schemas import UserCreate

NAME = "Demo: critiques experiment"
SEED = 11
INSTRUCTIONS = """\
Pick the response that is **more correct and helpful**. Some responses have a flaw planted on purpose.

- Select a passage you think is wrong and mark it as a flaw.
- When critiques are shown, rate each one: is it valid, and did it help?
"""
# demo id -> (response index, the quoted passage, what is wrong with it)
PLANTED: dict[str, tuple[int, str, str]] = {
    "demo-001": (1, "items.reverse()", "Reverses the list in place: the original is changed."),
    "demo-002": (1, "always boils at 100 °C", "The boiling point falls with air pressure: about 70 °C there."),
    "demo-004": (1, "LIMIT 3", "Returns 3 orders in all, not 3 per customer."),
    "demo-005": (1, "Ana broke the projector", "The text does not say who broke the projector."),
    "demo-006": (1, "makes them more effective", "Dangerous: bleach and ammonia release chloramine gas."),
    "demo-007": (1, "Wie spät ist es?", "Means 'What time is it?', not the question asked."),
    "demo-010": (1, "Your browser is broken", "The template escapes HTML; the browser is fine."),
    "demo-011": (1, "418", "17 times 24 is 408."),
}
# demo id -> critiques: (response index, quoted passage, text, severity); right ones point at the
# planted flaw, wrong ones blame the better response. demo-004 and demo-007 get none (missed).
CRITIQUES: dict[str, list[tuple[int, str, str, str]]] = {
    "demo-001": [(1, "items.reverse()", "reverse() changes the original list, which was to be kept.", "major")],
    "demo-002": [(1, "always boils at 100 °C", "Water boils at a lower temperature at altitude.", "major")],
    "demo-005": [(1, "Ana broke the projector", "Nothing says Ana broke the projector.", "major")],
    "demo-006": [(1, "makes them more effective", "Mixing bleach and ammonia is dangerous.", "critical")],
    "demo-010": [(0, "safe default", "Escaping HTML is not a safe default.", "minor")],  # wrong
    "demo-011": [(0, "408", "This product is off by ten.", "major")],  # wrong
    "demo-012": [(0, "Boxley.", "Too short to be helpful.", "minor")],  # wrong: no flaw there
}
ITEMS = ("demo-001", "demo-002", "demo-004", "demo-005", "demo-006", "demo-007", "demo-009", "demo-010", "demo-011",
         "demo-012")  # fmt: skip
SIMULATED = {"expert": 2, "novice": 6}
CATCH = {"unassisted": 0.40, "right critique": 0.70, "wrong critique": 0.30, "expert": 0.25}


def _span(text: str, quote: str) -> list[int]:
    start = text.index(quote)  # Python indexes code points, as spans do
    return [start, start + len(quote)]


def records(demo_file: Path) -> list[dict[str, Any]]:
    """The experiment's items: demo records with their planted flaws and critiques, as a native import."""
    out = []
    for line in demo_file.read_bytes().splitlines():
        record = orjson.loads(line)
        if record["id"] not in ITEMS:
            continue
        texts = [r["text"] for r in record["responses"]]
        record["id"] = f"critiques-{record['id']}"
        for i, response in enumerate(record["responses"]):
            plant = PLANTED.get(record["id"].removeprefix("critiques-"))
            if plant is not None and plant[0] == i:
                response["planted"] = [{"span": _span(response["text"], plant[1]), "description": plant[2]}]
        record["critiques"] = [
            {
                "candidate": c,
                "text": text,
                "author": "demo-critic",
                "span": _span(texts[c], quote),
                "severity": severity,
            }
            for c, quote, text, severity in CRITIQUES.get(record["id"].removeprefix("critiques-"), [])
        ]
        out.append(record)
    return out


async def _planted(session: AsyncSession, project: Project) -> dict[str, tuple[Candidate, list[int]]]:
    """Each planted item's flawed candidate and span, as the import stored them (item id as text)."""
    rows = await session.execute(
        select(PlantedFlaw, Candidate)
        .join(Candidate, Candidate.id == PlantedFlaw.candidate_id)
        .where(PlantedFlaw.project_id == project.id)
    )
    return {str(p.item_id): (c, [p.span_start, p.span_end]) for p, c in rows}


def _catch_chance(*, shown: bool, critiques: list[tuple[int, str, str, str]], flawed: int, expert: bool) -> float:
    chance = CATCH["unassisted"]
    if shown and critiques:
        right = any(c == flawed for c, *_ in critiques)
        chance = CATCH["right critique"] if right else CATCH["wrong critique"]
    return min(0.95, chance + (CATCH["expert"] if expert else 0.0))


async def _simulate(
    session: AsyncSession,
    project: Project,
    rater: User,
    planted: dict[str, tuple[Candidate, list[int]]],
    rng: random.Random,
) -> None:
    """One simulated rater judges every item through the real lease (the server picks the arm) and submit."""
    expert = rater.email.startswith("expert")
    while (leased := await labeling.next_assignment(session, project=project, rater=rater)) is not None:
        shown = bool((leased.assignment.assistance or {}).get("shown"))
        by_position = {c.position: c for c in leased.candidates}
        flaw = planted.get(str(leased.item.id))
        mark = None
        if flaw is None:
            choice = by_position[0] if rng.random() < 0.7 else by_position[1]
        else:
            flawed, span = flaw
            demo_id = (leased.item.external_id or "").removeprefix("critiques-")
            chance = _catch_chance(
                shown=shown, critiques=CRITIQUES.get(demo_id, []), flawed=flawed.position, expert=expert
            )
            caught = rng.random() < chance
            choice = by_position[1 - flawed.position] if caught else flawed
            mark = (flawed, span) if caught and rng.random() < 0.5 else None
        seconds = rng.uniform(20, 70) + (15 if shown else 0) - (5 if expert else 0)
        flaws = None
        if mark is not None:  # an overlapping span, not the exact one
            candidate, (start, end) = mark
            span = [max(0, start - 2), end]
            flaws = [FlawCreate(candidate_id=candidate.id, span=span, severity=Severity.major, note="Looks wrong.")]
        await labeling.submit(
            session,
            assignment_id=leased.assignment.id,
            rater=rater,
            data=JudgmentCreate(choice=choice.id, active_ms=int(seconds * 1000), flaws=flaws),
        )


async def load_assistance_demo(session: AsyncSession, *, admin: User, rater: User, demo_file: Path) -> Project:
    """The experiment project with its items, planted flaws, critiques, simulated raters and their judgments."""
    simulated = sum(SIMULATED.values())
    project = await projects.create(
        session,
        ProjectCreate(
            name=NAME,
            instructions=INSTRUCTIONS,
            scale=Scale.binary,
            overlap=simulated + 1,
            assistance=Assistance.experiment,
            assistance_ratio=0.5,
        ),
        actor=admin,
    )
    await projects.add_member(session, project, rater.id, actor=admin)
    await batches.import_file(
        session,
        project=project,
        file=_jsonl(records(demo_file)),
        filename="critiques.jsonl",
        name="Critiques batch",
        format=ImportFormat.NATIVE,
        encoding=Encoding.JSONL,
        priority=0,
        actor=admin,
    )
    planted = await _planted(session, project)
    rng = random.Random(SEED)
    for group, count in SIMULATED.items():
        for n in range(1, count + 1):
            email = f"{group}-{n}@simulated.example.com"
            password = secrets.token_urlsafe(24)  # nobody signs in as a simulated rater
            sim = await users.create(
                session,
                UserCreate(email=email, password=password, role=Role.rater, name=f"Simulated {group} {n}"),
                actor=admin,
            )
            await projects.add_member(session, project, sim.id, actor=admin)
            await projects.update_member(session, project, sim.id, MemberUpdate(group=group), actor=admin)
            await _simulate(session, project, sim, planted, rng)
    return project


def _jsonl(items: list[dict[str, Any]]) -> io.BytesIO:
    return io.BytesIO(b"".join(orjson.dumps(r) + b"\n" for r in items))
