"""`python -m bench.rewardmodel`: the trainer worker on real HH-RLHF pairs, through a real server.

1. End to end (`e2e`): a fifth of the shared HH-RLHF harmless-base sample's opening prompts is
   held out and never imported; the rest goes in as one batch (overlap 3), simulated raters judge
   it through the API (each agrees with the dataset's `chosen` 80% of the time), one worker cycle
   pulls, trains, reports and scores, and its model is measured on the held-out pairs against the
   dataset's labels. The same training code on the dataset's own labels is the reference; grouped
   5-fold cross-validation of both label sources on the imported pairs steadies the comparison.
2. Active learning through the API (`al`): two projects with the same pool and one simulated
   rater each; one serves items by the worker's uncertainty (active_learning on), the other in
   import order; after every `--step` judgments the worker runs a cycle and its model is measured
   on a held-out fold.
3. The same loop replayed without HTTP (`replay`) on all 5 folds and several rater seeds, with the
   worker's own training and scoring functions, because one held-out fold of ~330 pairs has a
   standard error of about 2.7 points: larger than the effect being measured.

Both learning curves go to bench/rewardmodel_active_learning.png (with matplotlib). Skipped, with
the reason, when the data is absent (a clone without ../shared).
"""

import argparse
import asyncio
import gzip
import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("ASSAY_ENVIRONMENT", "test")  # before server.config is imported anywhere

import httpx
import numpy as np
from rich.console import Console

from bench.database import database_server, migrate, scratch_database
from bench.servers import ROOT, running_servers
from server.batches.formats import ImportFormat, ParsedItem, iter_records
from server.client import AssayClient
from server.trainer.model import HashedNgrams, Pair, aggregate, fit, opening_prompt, render, score_features, train
from server.trainer.model import load as load_model
from server.trainer.store import Store
from server.trainer.worker import Worker

DATA = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base" / "test-shared.jsonl.gz"
PLOT = ROOT / "bench" / "rewardmodel_active_learning.png"
RESULTS = ROOT / "bench" / "results"
AGREEMENT = 0.8
console = Console(stderr=True)


@dataclass(frozen=True)
class Row:
    """One line of the file: the raw record, the item the importer makes of it, its dataset label."""

    line: bytes
    item: ParsedItem
    chosen: str  # the dataset's chosen reply, rendered as the worker reads it
    rejected: str

    @property
    def pair(self) -> Pair:
        a, b = sorted((self.chosen, self.rejected))
        return Pair(prompt=self.item.prompt, a=a, b=b, wins_a=int(a == self.chosen), wins_b=int(b == self.chosen))

    def fold(self, salt: str, folds: int) -> int:
        """A fold by opening prompt, so one conversation opening never lands on both sides."""
        digest = hashlib.sha256(f"{salt}:{opening_prompt(self.item.prompt)}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % folds


def _reply(candidate: Any) -> str:
    return render(candidate.text if candidate.text is not None else candidate.messages)


def read_rows() -> list[Row]:
    """The sample, parsed by the importer's own HH-RLHF reader."""
    raw = gzip.decompress(DATA.read_bytes())
    lines = [line for line in raw.splitlines() if line.strip()]
    rows = []
    for line, parsed in zip(lines, iter_records(io.BytesIO(raw), format=ImportFormat.HH), strict=True):
        assert isinstance(parsed, ParsedItem), parsed
        by_label = {c.metadata["hh_label"]: _reply(c) for c in parsed.candidates}
        rows.append(Row(line=line, item=parsed, chosen=by_label["chosen"], rejected=by_label["rejected"]))
    return rows


def agrees(external_id: str, rater: str, seed: int) -> bool:
    """Whether this rater sides with the dataset on this item: 80% of the time, reproducibly."""
    digest = hashlib.sha256(f"{seed}:{rater}:{external_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < AGREEMENT


def accuracy(weights: np.ndarray, pairs: list[Pair]) -> float:
    """Pairwise accuracy of a model against the pairs' labels."""
    featurizer = HashedNgrams()
    diff = featurizer.transform([p.a for p in pairs]) - featurizer.transform([p.b for p in pairs])
    predicted = np.asarray(diff @ weights).ravel() > 0
    return float(np.mean(predicted == np.array([p.label == 1 for p in pairs])))


# --- accounts, projects and raters, through the API -------------------------------------------


@dataclass(frozen=True)
class Accounts:
    admin: str
    trainer: str
    trainer_id: str
    raters: list[tuple[str, str]]  # (user id, token)


async def create_accounts(url: str, raters: int) -> Accounts:
    from server.auth import service as auth
    from server.db import make_engine, make_sessionmaker
    from server.models import Role, Scope
    from server.users import service as users
    from server.users.schemas import UserCreate

    async def make(session: Any, role: Role, scopes: list[Scope], email: str) -> tuple[str, str]:
        user = await users.create(session, UserCreate(email=email, password="bench password", role=role), actor=None)
        _, secret = await auth.create_token(
            session, user=user, name="bench", scopes=scopes, expires_in_days=1, actor=user
        )
        return str(user.id), secret

    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        async with make_sessionmaker(engine)() as session:
            _, admin = await make(session, Role.admin, [Scope.admin], "admin@rm.bench")
            trainer_id, trainer = await make(
                session, Role.trainer, [Scope.export_read, Scope.reward_models_write], "trainer@rm.bench"
            )
            crowd = [await make(session, Role.rater, [Scope.judgments_write], f"r{i}@rm.bench") for i in range(raters)]
            await session.commit()
    finally:
        await engine.dispose()
    return Accounts(admin=admin, trainer=trainer, trainer_id=trainer_id, raters=crowd)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_project(
    client: httpx.AsyncClient, accounts: Accounts, name: str, members: list[str], **settings: Any
) -> str:
    response = await client.post("/api/v1/projects", json={"name": name, **settings}, headers=bearer(accounts.admin))
    response.raise_for_status()
    project = str(response.json()["id"])
    for member in [accounts.trainer_id, *members]:
        added = await client.post(
            f"/api/v1/projects/{project}/members", json={"user_id": member}, headers=bearer(accounts.admin)
        )
        added.raise_for_status()
    return project


async def upload(client: httpx.AsyncClient, accounts: Accounts, project: str, rows: list[Row]) -> None:
    body = b"\n".join(r.line for r in rows) + b"\n"
    response = await client.post(
        f"/api/v1/projects/{project}/batches",
        headers=bearer(accounts.admin),
        data={"format": "hh", "name": "hh-rlhf harmless-base (shared sample)"},
        files={"file": ("hh.jsonl", body, "application/x-ndjson")},
    )
    if response.status_code != 201:
        raise RuntimeError(f"import refused: HTTP {response.status_code} {response.text[:500]}")


async def rate(
    client: httpx.AsyncClient, project: str, token: str, decide: Callable[[dict[str, Any]], str], limit: int
) -> int:
    """One rater judges up to `limit` items in the order the server serves them; returns how many."""
    done = 0
    while done < limit:
        response = await client.post(f"/api/v1/projects/{project}/assignments/next", headers=bearer(token))
        if response.status_code == 204:
            break
        response.raise_for_status()
        assignment = response.json()
        body = {"choice": decide(assignment["item"])}
        judged = await client.post(f"/api/v1/assignments/{assignment['id']}/judgment", json=body, headers=bearer(token))
        judged.raise_for_status()
        done += 1
    return done


def simulated_rater(truth: dict[str, Row], rater: str, seed: int) -> Callable[[dict[str, Any]], str]:
    """Picks the dataset's chosen reply when it agrees with the dataset, the other one otherwise."""

    def decide(item: dict[str, Any]) -> str:
        row = truth[item["external_id"]]
        candidates = item["candidates"]
        chosen = next(
            c for c in candidates if render(c["text"] if c["text"] is not None else c["messages"]) == row.chosen
        )
        other = next(c for c in candidates if c["id"] != chosen["id"])
        return str(chosen["id"] if agrees(item["external_id"], rater, seed) else other["id"])

    return decide


def make_worker(base: str, accounts: Accounts, project: str, data_dir: Path) -> Worker:
    client = AssayClient(base, accounts.trainer)
    return Worker(client, Store(data_dir), server=base, project_id=project, featurizer=HashedNgrams())


# --- 1. end to end ------------------------------------------------------------------------------


def cross_validate(pairs: list[tuple[Row, Pair]], folds: int = 5) -> float:
    """Grouped k-fold accuracy against the dataset's labels, fitting (the worker's `fit`) on the given labels."""
    scores = []
    for k in range(folds):
        weights, _ = fit(HashedNgrams(), [p for row, p in pairs if row.fold("cv", folds) != k])
        scores.append(accuracy(weights, [row.pair for row, _ in pairs if row.fold("cv", folds) == k]))
    return float(np.mean(scores))


async def judge_all(base: str, accounts: Accounts, rows: list[Row], seed: int) -> tuple[str, dict[str, float]]:
    """A project with `rows` as one batch at overlap 3, every item judged by the simulated raters."""
    truth = {r.item.external_id: r for r in rows}
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        members = [u for u, _ in accounts.raters]
        project = await create_project(client, accounts, "HH-RLHF end to end", members, overlap=3)
        started = time.perf_counter()
        await upload(client, accounts, project, rows)
        import_s = time.perf_counter() - started
        console.print(f"imported {len(rows)} HH-RLHF pairs in {import_s:.1f} s; raters judging (overlap 3)")
        started = time.perf_counter()
        raters = (rate(client, project, t, simulated_rater(truth, u, seed), 10**9) for u, t in accounts.raters)
        judgments = sum(await asyncio.gather(*raters))
    return project, {"import_s": import_s, "rating_s": time.perf_counter() - started, "judgments": judgments}


async def end_to_end(base: str, accounts: Accounts, rows: list[Row], workdir: Path, seed: int) -> dict[str, Any]:
    # A fifth of the opening prompts is never imported: the held-out part the models are measured on.
    held_out = [r.pair for r in rows if r.fold("e2e", 5) == 0]
    imported = [r for r in rows if r.fold("e2e", 5) != 0]
    project, rating = await judge_all(base, accounts, imported, seed)
    console.print(f"{rating['judgments']} judgments in {rating['rating_s']:.1f} s; one worker cycle")
    work = make_worker(base, accounts, project, workdir / "e2e")
    started = time.perf_counter()
    cycle = await work.cycle()
    cycle_s = time.perf_counter() - started
    await work.client.aclose()
    state = work.store.load(server=base, project_id=project)
    assert state.trained is not None
    reference = train([r.pair for r in imported], HashedNgrams(), n_judgments=0)
    # The raters' aggregated (majority of 3) labels, matched back to the file's rows.
    rater_pairs, _ = aggregate(work.store.rows(state))
    by_key = {(json.dumps(p.prompt), p.a, p.b): p for p in rater_pairs}
    matched = [(r, by_key[(json.dumps(r.item.prompt), r.pair.a, r.pair.b)]) for r in imported]
    return {
        "pairs": len(rows),
        "imported": len(imported),
        **rating,
        "judgments_per_s": rating["judgments"] / rating["rating_s"],
        "majority_label_accuracy": float(np.mean([p.label == r.pair.label for r, p in matched])),
        "worker": {
            "cycle_s": cycle_s,
            "pulled": cycle.pulled,
            "version": cycle.version,
            "metrics": state.trained.metrics,
        },
        "held_out_pairs": len(held_out),
        "accuracy_dataset_labels": accuracy(reference.weights, held_out),
        "accuracy_rater_labels": accuracy(load_model(Path(state.trained.artefact)).weights, held_out),
        "training_s_dataset_labels": reference.metrics["training_seconds"],
        "cv5_dataset_labels": cross_validate([(r, r.pair) for r in imported]),
        "cv5_rater_labels": cross_validate([(r, p) for r, p in matched if p.label is not None]),
    }


# --- 2. active learning -------------------------------------------------------------------------


async def learning_curve(
    base: str,
    accounts: Accounts,
    pool: list[Row],
    test: list[Pair],
    workdir: Path,
    *,
    active: bool,
    step: int,
    seed: int,
    most: int,
) -> list[tuple[int, float]]:
    """Judgments so far → held-out accuracy, one point per worker cycle, up to `most` judgments."""
    truth = {r.item.external_id: r for r in pool}
    user, token = accounts.raters[0]
    name = f"AL {'uncertainty' if active else 'import order'} seed {seed}"
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        project = await create_project(client, accounts, name, [user], overlap=1, active_learning=active)
        await upload(client, accounts, project, pool)
        work = make_worker(base, accounts, project, workdir / f"al-{int(active)}-{seed}")
        decide = simulated_rater(truth, user, seed)
        curve: list[tuple[int, float]] = []
        judged = 0
        while judged < most and (done := await rate(client, project, token, decide, step)) > 0:
            judged += done
            await work.cycle()
            state = work.store.load(server=base, project_id=project)
            if state.trained is not None:
                curve.append((judged, accuracy(load_model(Path(state.trained.artefact)).weights, test)))
        await work.client.aclose()
    return curve


async def active_learning(
    base: str, accounts: Accounts, rows: list[Row], workdir: Path, *, step: int, seeds: list[int], most: int
) -> dict[str, Any]:
    test = [r.pair for r in rows if r.fold("al", 5) == 0]
    pool = [r for r in rows if r.fold("al", 5) != 0]  # in file (import) order
    curves: dict[str, list[list[tuple[int, float]]]] = {"uncertainty": [], "import order": []}
    for seed in seeds:
        for label, active in (("uncertainty", True), ("import order", False)):
            console.print(f"active learning: {label}, rater seed {seed}, {len(pool)} items, cycle every {step}")
            curves[label].append(
                await learning_curve(
                    base, accounts, pool, test, workdir, active=active, step=step, seed=seed, most=most
                )
            )
    mean = {
        label: [(runs[0][i][0], float(np.mean([run[i][1] for run in runs]))) for i in range(len(runs[0]))]
        for label, runs in curves.items()
    }
    return {"pool": len(pool), "test_pairs": len(test), "step": step, "seeds": seeds, "curves": mean}


def replay(rows: list[Row], *, folds: int, seeds: list[int], step: int, most: int) -> dict[str, Any]:
    """The same loop without HTTP, to average away the noise of one held-out set and one rater.

    Each fold of opening prompts is the held-out set once; the rest is the pool, in file order.
    Every round judges `step` more items (up to `most`), chosen as the server serves them: by the
    worker's `score_items` uncertainty, highest first, import order breaking ties (or import
    order alone), labelled by a simulated rater, and the worker's `train` refits.
    """
    # Every row's two candidates, featurised once: rows 2i and 2i + 1 belong to row i.
    candidates = HashedNgrams().transform([_reply(c) for r in rows for c in r.item.candidates])
    curves: dict[str, list[list[tuple[int, float]]]] = {"uncertainty": [], "import order": []}
    for fold in range(folds):
        test = [r.pair for r in rows if r.fold("al", folds) == fold]
        pool = [i for i, r in enumerate(rows) if r.fold("al", folds) != fold]
        for seed in seeds:
            console.print(f"replay: fold {fold + 1}/{folds}, rater seed {seed}")
            agree = {i: agrees(rows[i].item.external_id, "replay", seed) for i in pool}
            for label, active in (("uncertainty", True), ("import order", False)):
                curve = _replay_curve(rows, candidates, pool, agree, test, active=active, step=step, most=most)
                curves[label].append(curve)
    mean = {
        label: [(runs[0][i][0], float(np.mean([run[i][1] for run in runs]))) for i in range(len(runs[0]))]
        for label, runs in curves.items()
    }
    return {
        "folds": folds,
        "seeds": seeds,
        "step": step,
        "runs": len(curves["uncertainty"]),
        "curves": mean,
        "per_run": curves,
        "summary": curve_summary(curves),
    }


BOOTSTRAP = 4000  # resamples of the runs for the 95% intervals


def _interval(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of `values` (one value per run)."""
    means = values[rng.integers(0, len(values), size=(BOOTSTRAP, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def curve_summary(curves: dict[str, list[list[tuple[int, float]]]]) -> list[dict[str, Any]]:
    """The whole curve, point by point: each order's mean accuracy and the paired difference, with 95% intervals.

    Runs are paired (same held-out fold, same simulated rater, same pool; only the serving order
    differs), so the difference is taken run by run before it is averaged and resampled. The
    runs share items across folds, so the intervals are, if anything, a little too narrow.
    """
    rng = np.random.default_rng(0)
    active, plain = curves["uncertainty"], curves["import order"]
    points = []
    for i in range(min(len(run) for run in active + plain)):
        a = np.array([run[i][1] for run in active])
        p = np.array([run[i][1] for run in plain])
        diff = a - p
        points.append(
            {
                "judgments": active[0][i][0],
                "uncertainty": float(a.mean()),
                "uncertainty_ci": _interval(a, rng),
                "import_order": float(p.mean()),
                "import_order_ci": _interval(p, rng),
                "difference": float(diff.mean()),
                "difference_ci": _interval(diff, rng),
                "runs_better": int((diff > 0).sum()),
                "runs_worse": int((diff < 0).sum()),
                "runs": len(diff),
            }
        )
    return points


def summary_markdown(replayed: dict[str, Any]) -> str:
    """The whole replayed curve as a markdown table (docs/BENCHMARKS.md quotes it)."""
    lines = [
        f"Mean held-out accuracy of {replayed['runs']} paired runs (5 folds x rater seeds {replayed['seeds']}), "
        "with 95% bootstrap intervals over runs; difference = uncertainty - import order, run by run.",
        "",
        "| judgments | import order | uncertainty first | difference (points) | runs better / worse |",
        "|---:|---:|---:|---:|---:|",
    ]
    for p in replayed["summary"]:
        (pl, ph), (al, ah), (dl, dh) = p["import_order_ci"], p["uncertainty_ci"], p["difference_ci"]
        lines.append(
            f"| {p['judgments']} | {p['import_order']:.3f} [{pl:.3f}, {ph:.3f}] | {p['uncertainty']:.3f} "
            f"[{al:.3f}, {ah:.3f}] | {100 * p['difference']:+.1f} [{100 * dl:+.1f}, {100 * dh:+.1f}] | "
            f"{p['runs_better']} / {p['runs_worse']} |"
        )
    return "\n".join(lines)


def _replay_curve(
    rows: list[Row],
    candidates: Any,
    pool: list[int],
    agree: dict[int, bool],
    test: list[Pair],
    *,
    active: bool,
    step: int,
    most: int,
) -> list[tuple[int, float]]:
    featurizer = HashedNgrams()
    judged: list[int] = []
    waiting = list(pool)  # import order
    curve: list[tuple[int, float]] = []
    while waiting and len(judged) < most:
        taken, waiting = waiting[:step], waiting[step:]
        judged += taken
        pairs = []
        for i in judged:
            p = rows[i].pair
            a_wins = (p.label == 1) == agree[i]  # the rater sides with the dataset, or not
            pairs.append(Pair(prompt=p.prompt, a=p.a, b=p.b, wins_a=int(a_wins), wins_b=int(not a_wins)))
        trained = train(pairs, featurizer, n_judgments=len(pairs))
        curve.append((len(judged), accuracy(trained.weights, test)))
        if active and waiting:
            rows_of = [k for i in waiting for k in (2 * i, 2 * i + 1)]
            scored = score_features(trained.weights, candidates[rows_of], [2] * len(waiting))
            order = sorted(range(len(waiting)), key=lambda k: (-round(scored[k][1], 6), waiting[k]))
            waiting = [waiting[k] for k in order]
    return curve


def plot(al: dict[str, Any] | None, replayed: dict[str, Any] | None, path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'); curves printed only"
    panels = 1 if al else 0
    panels += 2 if replayed else 0
    figure, axes = plt.subplots(1, panels, figsize=(5.6 * panels, 4.4), dpi=110, squeeze=False)
    column = iter(axes[0])
    styles = (("uncertainty", "o-", "tab:blue"), ("import order", "s--", "tab:orange"))
    xlabel = "judgments (a simulated rater agreeing with HH-RLHF 'chosen' 80% of the time)"
    if al:
        ax = next(column)
        for label, style, color in styles:
            xs, ys = zip(*al["curves"][label], strict=True)
            ax.plot(xs, ys, style, color=color, label=f"served by {label}", markersize=3)
        ax.set_title(f"through the API: one run, one held-out fold ({al['test_pairs']} pairs)", fontsize=9)
        ax.set_ylabel("held-out pairwise accuracy", fontsize=9)
    if replayed:
        points = replayed["summary"]
        xs = [p["judgments"] for p in points]
        ax = next(column)
        for (label, style, color), key in zip(styles, ("uncertainty", "import_order"), strict=True):
            low, high = zip(*(p[f"{key}_ci"] for p in points), strict=True)
            ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)
            ax.plot(xs, [p[key] for p in points], style, color=color, label=f"served by {label}", markersize=3)
        ax.set_title(f"replay: mean of {replayed['runs']} paired runs, 95% bootstrap band", fontsize=9)
        ax.set_ylabel("held-out pairwise accuracy", fontsize=9)
        ax = next(column)
        low, high = zip(*(p["difference_ci"] for p in points), strict=True)
        ax.fill_between(xs, [100 * v for v in low], [100 * v for v in high], color="tab:green", alpha=0.25, linewidth=0)
        ax.plot(xs, [100 * p["difference"] for p in points], "o-", color="tab:green", markersize=3)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title("replay: uncertainty minus import order, run by run (95% band)", fontsize=9)
        ax.set_ylabel("accuracy difference (points)", fontsize=9)
    for ax in axes[0]:
        ax.set_xlabel(xlabel, fontsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    figure.suptitle("Active learning with the trainer worker: hashed n-gram Bradley-Terry, HH-RLHF harmless-base")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return str(path.relative_to(ROOT))


def _curves_report(out: Console, result: dict[str, Any]) -> None:
    for label, curve in result["curves"].items():
        out.print(f"  {label:<13}" + " ".join(f"{n}:{acc:.3f}" for n, acc in curve), soft_wrap=True)


def print_report(
    e2e: dict[str, Any] | None, al: dict[str, Any] | None, replayed: dict[str, Any] | None, plot_note: str | None
) -> None:
    out = Console()
    if e2e:
        w, run = e2e["worker"]["metrics"], e2e["worker"]
        lines = [
            "[bold]Reward model, end to end on HH-RLHF harmless-base (shared sample)[/bold]",
            f"  pairs imported                  {e2e['imported']} of {e2e['pairs']} (one batch, overlap 3) in "
            f"{e2e['import_s']:.1f} s; the other {e2e['held_out_pairs']} (a fifth of opening prompts) held out",
            f"  simulated judgments             {e2e['judgments']} through the API, {e2e['judgments_per_s']:.0f}/s",
            f"  majority-of-3 = dataset label   {e2e['majority_label_accuracy']:.3f} of pairs (each rater 0.80)",
            f"  worker cycle                    {run['cycle_s']:.1f} s: pulled {run['pulled']} rows = {w['n_pairs']} "
            f"pairs; fit on {w['n_train']}, measured on {w['n_validation']}, refit on all: "
            f"{w['training_seconds']:.2f} s; reported v{run['version']}",
            f"  worker's own held-out metric    accuracy {w['accuracy']:.3f} (vs raters' labels), "
            f"log loss {w['log_loss']:.3f}",
            f"  held-out accuracy vs the dataset's labels ({e2e['held_out_pairs']} pairs, split by opening prompt):",
            f"    trained on dataset labels     {e2e['accuracy_dataset_labels']:.3f} "
            f"(training {e2e['training_s_dataset_labels']:.2f} s)",
            f"    trained on raters' labels     {e2e['accuracy_rater_labels']:.3f} "
            f"({100 * (e2e['accuracy_dataset_labels'] - e2e['accuracy_rater_labels']):+.1f} points lost)",
            f"  grouped 5-fold CV (imported)    dataset labels {e2e['cv5_dataset_labels']:.3f}, raters' labels "
            f"{e2e['cv5_rater_labels']:.3f} ({100 * (e2e['cv5_dataset_labels'] - e2e['cv5_rater_labels']):+.1f} "
            "points lost)",
        ]
        for line in lines:
            out.print(line, soft_wrap=True)
    if al:
        out.print(
            f"[bold]Active learning through the API[/bold] ({al['pool']} items, {al['test_pairs']} held-out pairs, "
            f"a worker cycle every {al['step']} judgments, rater seeds {al['seeds']})",
            soft_wrap=True,
        )
        _curves_report(out, al)
    if replayed:
        out.print(
            f"[bold]Active learning replayed without HTTP[/bold] (same worker code; mean of {replayed['runs']} runs: "
            f"5 held-out folds x rater seeds {replayed['seeds']}, a cycle every {replayed['step']} judgments)",
            soft_wrap=True,
        )
        out.print(summary_markdown(replayed), soft_wrap=True, markup=False)
    if plot_note:
        out.print(f"  plot: {plot_note}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.rewardmodel", description=__doc__)
    parser.add_argument("--parts", default="e2e,al,replay", help="comma list of e2e,al,replay")
    parser.add_argument("--step", type=int, default=100, help="judgments between worker cycles (al)")
    parser.add_argument("--seeds", default="1", help="comma list of rater seeds; curves are averaged (al)")
    parser.add_argument("--most", type=int, default=800, help="judgments per curve (al)")
    parser.add_argument("--replay-step", type=int, default=50, help="judgments between refits (replay)")
    parser.add_argument("--replay-seeds", default="1,2", help="rater seeds, each run on all 5 folds (replay)")
    parser.add_argument("--replay-most", type=int, default=800, help="judgments per replayed curve (replay)")
    parser.add_argument("--raters", type=int, default=6, help="simulated raters (e2e, overlap 3)")
    return parser.parse_args(argv)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    rows = read_rows()
    parts = {p.strip() for p in args.parts.split(",")}
    results: dict[str, Any] = {}
    async with database_server() as server, scratch_database(server, "assay_rm") as url:
        await migrate(url)
        accounts = await create_accounts(url, max(3, args.raters))
        with (
            tempfile.TemporaryDirectory(prefix="assay-rm-") as workdir,
            running_servers(1, database_url=url, pool_size=10, log_dir=RESULTS / "logs") as servers,
        ):
            if "e2e" in parts:
                results["e2e"] = await end_to_end(servers[0].url, accounts, rows, Path(workdir), seed=1)
            if "al" in parts:
                seeds = [int(s) for s in args.seeds.split(",")]
                results["al"] = await active_learning(
                    servers[0].url, accounts, rows, Path(workdir), step=args.step, seeds=seeds, most=args.most
                )
    if "replay" in parts:
        seeds = [int(s) for s in args.replay_seeds.split(",")]
        results["replay"] = replay(rows, folds=5, seeds=seeds, step=args.replay_step, most=args.replay_most)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not DATA.exists():
        console.print(f"bench.rewardmodel skipped: the HH-RLHF sample is not at {DATA} (it lives in ../shared/data)")
        return 0
    started = time.monotonic()
    results = asyncio.run(measure(args))
    curves = results.get("al") or results.get("replay")
    note = plot(results.get("al"), results.get("replay"), PLOT) if curves else None
    results["wall_s"] = time.monotonic() - started
    print_report(results.get("e2e"), results.get("al"), results.get("replay"), note)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rewardmodel.json").write_text(json.dumps(results, indent=1, default=str))
    if replayed := results.get("replay"):
        (RESULTS / "rewardmodel_curve.md").write_text(summary_markdown(replayed) + "\n")
    console.print(f"done in {results['wall_s']:.0f} s; results in bench/results/rewardmodel.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
