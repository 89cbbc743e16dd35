"""The demo project `make run` creates: our own small data set, shipped with the code."""

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from server.batches import service as batches
from server.batches.formats import Encoding, ImportFormat
from server.demo.assistance import load_assistance_demo
from server.models import Role, Scale
from server.projects import service as projects
from server.projects.schemas import ProjectCreate
from server.users import service as users
from server.users.schemas import UserCreate

DEMO_FILE = Path(__file__).resolve().parent / "demo.jsonl"
DEMO_RATER = "rater@example.com"
INSTRUCTIONS = """\
Pick the response that is **more helpful, honest and harmless** for the person asking.

- Prefer correct over confident: a short right answer beats a long wrong one.
- Code must work as written; check edge cases.
- If both are bad, say so (press `x`).
"""


async def load_demo(session: AsyncSession, *, admin_email: str, admin_password: str, rater_password: str) -> None:
    """Create an admin, a rater (each with their own password), a demo project holding the shipped items, and
    an assistance experiment built from them (server/demo/assistance.py)."""
    admin = await users.create(
        session,
        UserCreate(email=admin_email, password=admin_password, role=Role.admin, name="Admin"),
        actor=None,
    )
    rater = await users.create(
        session,
        UserCreate(email=DEMO_RATER, password=rater_password, role=Role.rater, name="Demo rater"),
        actor=admin,
    )
    project = await projects.create(
        session,
        ProjectCreate(
            name="Demo: helpful answers",
            instructions=INSTRUCTIONS,
            scale=Scale.eight_point,
            allow_tie=True,
            allow_both_bad=True,
            overlap=2,
        ),
        actor=admin,
    )
    await projects.add_member(session, project, rater.id, actor=admin)
    with DEMO_FILE.open("rb") as file:
        await batches.import_file(
            session,
            project=project,
            file=file,
            filename=DEMO_FILE.name,
            name="Demo batch",
            format=ImportFormat.NATIVE,
            encoding=Encoding.JSONL,
            priority=0,
            actor=admin,
        )
    # Each import stages its rows in a temporary table dropped at commit: one import per transaction.
    await session.commit()
    await load_assistance_demo(session, admin=admin, rater=rater, demo_file=DEMO_FILE)
