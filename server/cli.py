"""The `assay` command: serve, migrate, accounts, tokens, demo data, the trainer worker.

Settings are read inside the commands that need them, so `assay worker` runs on a host that has
only a server URL and a token (no database, no secret key).
"""

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

app = typer.Typer(help="Assay: human preference judgments for reward models.", no_args_is_help=True)
user_app = typer.Typer(help="Manage accounts.")
token_app = typer.Typer(help="Manage API tokens.")
db_app = typer.Typer(help="The embedded PostgreSQL.")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(db_app, name="db")
console = Console()
T = TypeVar("T")
DEMO_FILE = Path(__file__).resolve().parent / "demo" / "demo.jsonl"


def _database_url() -> str:
    from server.migrate import resolve_database_url

    return resolve_database_url()


def _with_session(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from server.db import make_engine, make_sessionmaker

    async def run() -> T:
        engine = make_engine(url, pool_size=1, max_overflow=0)
        try:
            async with make_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(run())


@app.command()
def migrate() -> None:
    """Apply database migrations."""
    from server.migrate import upgrade

    url = _database_url()
    upgrade(url)
    console.print("[green]Database is at the latest schema.[/green]")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
    demo: Annotated[bool, typer.Option(help="Create an admin and a demo project when the database is empty.")] = False,
) -> None:
    """Start the server (embedded PostgreSQL unless DATABASE_URL is set; migrations applied first)."""
    import uvicorn

    from server.migrate import upgrade

    url = _database_url()
    upgrade(url)
    if demo:
        _with_session(url, _bootstrap_demo)
    os.environ["DATABASE_URL"] = url  # worker processes reuse the same server
    console.print(f"Assay on [bold]http://{host}:{port}[/bold]  (API reference: http://{host}:{port}/api/docs)")
    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        # uvicorn would believe X-Forwarded-* from 127.0.0.1; the app decides whom to believe
        # (ASSAY_TRUSTED_PROXIES), so login throttling cannot be dodged with a forged header.
        proxy_headers=False,
    )


async def _bootstrap_demo(session: AsyncSession) -> None:
    from server.demo import DEMO_RATER, load_demo
    from server.models import User

    if await session.scalar(select(func.count()).select_from(User)):
        console.print("Accounts already exist; demo setup skipped.")
        return
    email = os.environ.get("ASSAY_ADMIN_EMAIL", "admin@example.com")
    password = os.environ.get("ASSAY_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    # The rater gets a password of its own: knowing the rater's must never give the admin's.
    rater_password = secrets.token_urlsafe(12)
    await load_demo(session, admin_email=email, admin_password=password, rater_password=rater_password)
    from server.demo.trees import load_trees_demo

    await load_trees_demo(session, admin_email=email, rater_email=DEMO_RATER)
    console.print(
        f"[bold]Admin account[/bold] (shown once): {email} / {password}\n"
        f"A demo project is ready; its [bold]rater[/bold] (shown once): {DEMO_RATER} / {rater_password}"
    )


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="Login email.")],
    password: Annotated[str, typer.Option(help="At least 8 characters.", prompt=True, hide_input=True)],
    role: Annotated[str, typer.Option(help="admin, rater or trainer.")] = "rater",
    name: Annotated[str, typer.Option(help="Display name.")] = "",
) -> None:
    """Create an account."""
    from pydantic import ValidationError

    from server.errors import AssayError
    from server.models import Role
    from server.users import service
    from server.users.schemas import UserCreate

    if role not in {r.value for r in Role}:
        console.print(f"[red]role must be admin, rater or trainer; got {role!r}.[/red]")
        raise typer.Exit(2)
    try:
        data = UserCreate(email=email, password=password, role=Role(role), name=name)
    except ValidationError as exc:
        console.print(f"[red]{exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}[/red]")
        raise typer.Exit(2) from None
    try:
        user = _with_session(_database_url(), lambda s: service.create(s, data, actor=None))
    except AssayError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    console.print(f"Created {user.role} {user.email} ({user.id}).")


@token_app.command("create")
def token_create(
    email: Annotated[str, typer.Option(help="The account the token acts as.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated, e.g. export:read,judgments:write.")],
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "cli",
    days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="Expire after this many days (default: ASSAY_TOKEN_DAYS, 90).")
    ] = None,
    never_expires: Annotated[bool, typer.Option(help="A token that does not expire.")] = False,
) -> None:
    """Create an API token and print it once."""
    from server.auth import service
    from server.config import settings
    from server.errors import AssayError
    from server.models import Scope
    from server.users import service as users

    if never_expires and days is not None:
        console.print("[red]Give --days or --never-expires, not both.[/red]")
        raise typer.Exit(2)
    expires_in_days = None if never_expires else (days or settings.token_days)

    try:
        wanted = [Scope(s.strip()) for s in scopes.split(",") if s.strip()]
    except ValueError as exc:
        console.print(f"[red]Unknown scope: {exc}. Scopes: {', '.join(s.value for s in Scope)}[/red]")
        raise typer.Exit(2) from None

    async def work(session: AsyncSession) -> str:
        user = await users.get_by_email(session, email)
        if user is None:
            raise typer.BadParameter(f"no account with email {email}")
        _, secret = await service.create_token(
            session, user=user, name=name, scopes=wanted, expires_in_days=expires_in_days, actor=user
        )
        return secret

    try:
        secret = _with_session(_database_url(), work)
    except AssayError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    print(secret)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL under the data directory."""
    from server.config import settings
    from server.pgserver import stop_embedded

    stopped = stop_embedded(settings.data_dir)
    console.print("Stopped." if stopped else "The embedded PostgreSQL was not running.")


@db_app.command("url")
def db_url() -> None:
    """Print the database URL in use (starting the embedded server if needed)."""
    print(_database_url())


@app.command()
def worker(
    url: Annotated[str, typer.Option(help="The Assay server, e.g. http://127.0.0.1:8000.", envvar="ASSAY_URL")],
    token: Annotated[
        str, typer.Option(help="A trainer token: export:read and reward_models:write.", envvar="ASSAY_WORKER_TOKEN")
    ],
    project: Annotated[str, typer.Option(help="The project's id.", envvar="ASSAY_PROJECT")],
    once: Annotated[bool, typer.Option(help="Do one pull-train-report-score cycle and exit.")] = False,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where pulled rows, models and state live (default .assay/worker/PROJECT).")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between cycles.")] = 60.0,
    retries: Annotated[
        int,
        typer.Option(help="Retries (1, 2, 4 … 60 s apart) while the server is down.", envvar="ASSAY_WORKER_RETRIES"),
    ] = 6,
    embeddings: Annotated[
        Path | None, typer.Option(help="A local model2vec model directory (needs the model2vec package).")
    ] = None,
    labels: Annotated[
        str,
        typer.Option(
            help="What to train on: judgments (every judgment), majority (per completed item) or weighted "
            "(per completed item, votes weighted by rater reliability; also trains on the majority labels of the "
            "same items and reports both held-out accuracies)."
        ),
    ] = "judgments",
    judge: Annotated[
        bool,
        typer.Option(
            help="Also judge the items a hand-off rule offers to model judges, with the current model "
            "(its probability as confidence), under the model account of --judge-token."
        ),
    ] = False,
    judge_token: Annotated[
        str,
        typer.Option(help="A model account's token (judgments:write), for --judge.", envvar="ASSAY_JUDGE_TOKEN"),
    ] = "",
) -> None:
    """Train a reward model from the project's judgments and send uncertain items to raters first."""
    import logging

    from rich.logging import RichHandler
    from rich.progress import Progress

    from server.client import ApiError, AssayClient, Unreachable
    from server.trainer.model import Featurizer, HashedNgrams, Model2VecEmbeddings
    from server.trainer.store import Store
    from server.trainer.worker import Worker, run_forever

    if not token.strip() or not project.strip():
        console.print(
            "[red]Give the worker a trainer token and a project: --token and --project, "
            "or ASSAY_WORKER_TOKEN and ASSAY_PROJECT.[/red]"
        )
        raise typer.Exit(2)
    if judge and not judge_token.strip():
        console.print(
            "[red]--judge needs --judge-token: a token of a model account (kind model) that is a member of the "
            "project; the trainer token cannot judge.[/red]"
        )
        raise typer.Exit(2)
    if labels not in ("judgments", "majority", "weighted"):
        console.print(f"[red]--labels must be judgments, majority or weighted, not {labels!r}.[/red]")
        raise typer.Exit(2)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=console)], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        featurizer: Featurizer = Model2VecEmbeddings(embeddings) if embeddings else HashedNgrams()
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    store = Store(data_dir or Path(".assay") / "worker" / project)

    async def main(progress: Progress | None) -> None:
        async with (
            AssayClient(url, token, retries=retries) as client,
            AssayClient(url, judge_token or token, retries=retries) as judge_client,
        ):
            work = Worker(
                client,
                store,
                server=url,
                project_id=project,
                featurizer=featurizer,
                progress=progress,
                labels=labels,
                judge=judge_client if judge else None,
            )
            if once:
                await work.cycle()
            else:
                await run_forever(work, interval=interval)

    try:
        with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
            asyncio.run(main(progress))
    except (ApiError, Unreachable, RuntimeError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
