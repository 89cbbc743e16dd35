"""The task-tree demo `make run` adds: a long document and two summaries of it, judged first section
by section (a check per summary and section, pointing at the summary's sentence about it) and then
as a whole, with the checks' results shown beside the summaries (assistance `always`).

Our own data: a short guide to how Assay hands out work (trees.json, shipped with the code); the
second summary gets two sections wrong on purpose.
"""

import io
import json
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.batches import service as batches
from server.batches.formats import Encoding, ImportFormat
from server.models import Assistance, User
from server.projects import service as projects
from server.projects.schemas import ProjectCreate

TREES_FILE = Path(__file__).resolve().parent / "trees.json"
INSTRUCTIONS = """\
**Section checks first.** For each check, read the section of the guide and the marked sentence of
the summary: does the sentence say what the section says? `y` yes, `n` no, `u` unsure.

**Then the whole.** Pick the summary that is more faithful to the guide. The section checks of other
raters are shown beside the summaries: use them, but judge for yourself.
"""


def tree_record(data: dict[str, Any]) -> dict[str, Any]:
    """The native record: the guide as the prompt, the summaries as responses, a check per section each."""
    summaries = [" ".join(sentences) for sentences in data["summaries"]]
    checks = []
    for k, sentences in enumerate(data["summaries"]):
        for section, sentence in enumerate(sentences, start=1):
            start = summaries[k].index(sentence)  # str indexes code points: the span's unit
            checks.append(
                {
                    "kind": "check",
                    "question": f"Does the marked sentence say what section {section} of the guide says?",
                    "candidate": k,
                    "span": [start, start + len(sentence)],
                }
            )
    return {
        "id": data["id"],
        "prompt": data["title"] + "\n\n" + "\n\n".join(data["sections"]),
        "responses": [{"text": text, "model": f"summarizer-{k}"} for k, text in enumerate(summaries)],
        "subtasks": checks,
        "metadata": {"source": "assay-demo"},
    }


async def load_trees_demo(session: AsyncSession, *, admin_email: str, rater_email: str) -> None:
    """A second demo project: one task tree (eight section checks, then the comparison they gate)."""
    admin = await session.scalar(select(User).where(User.email == admin_email))
    rater = await session.scalar(select(User).where(User.email == rater_email))
    assert admin is not None
    project = await projects.create(
        session,
        ProjectCreate(
            name="Demo: summaries checked section by section",
            instructions=INSTRUCTIONS,
            assistance=Assistance.always,
            subtasks_gate="required",
        ),
        actor=admin,
    )
    if rater is not None:
        await projects.add_member(session, project, rater.id, actor=admin)
    record = tree_record(json.loads(TREES_FILE.read_text(encoding="utf-8")))
    await batches.import_file(
        session,
        project=project,
        file=io.BytesIO(orjson.dumps(record) + b"\n"),
        filename="trees.jsonl",
        name="Demo task tree",
        format=ImportFormat.NATIVE,
        encoding=Encoding.JSONL,
        priority=0,
        actor=admin,
    )
