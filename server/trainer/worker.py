"""The trainer worker's cycle: pull new judgments, train, report the model, score open items.

Each step saves the state before the next begins, so a crash at any point resumes cleanly:
- pull: rows go to a new segment file; the cursor moves only once the file is complete (with
  `--labels weighted`, the majority labels of the comparison are a second stream, pulled the same
  way into their own store, `<data-dir>/compare-majority/`, after the weighted rows);
- train: only when a segment arrived since the last model (never twice on the same data);
  the artefact and the run are saved before anything is reported; with `--labels weighted` the
  run's metrics hold the comparison with majority labels (`compare`), measured in the same step;
- report: idempotent on the server (same features and cursor range → the same version);
- score: every cycle, with the reported model, so items imported since are scored too.
"""

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.progress import Progress, TaskID

from server.client import AssayClient, ModelReport, OpenItem, Score, Unreachable
from server.trainer.model import (
    Featurizer,
    NotEnoughData,
    Pair,
    aggregate,
    compare_labels,
    judge_items,
    load,
    render,
    save,
    score_items,
    train,
)
from server.trainer.store import Segment, State, Store, TrainedRun

log = logging.getLogger("assay.worker")
SCORE_PAGE = 1000
JUDGE_LIMIT = 1000  # items judged per cycle (`--judge`), so a cycle ends and the model is retrained

# `--labels`: what the worker trains on, and the export parameters that pull it.
# - judgments: every judgment's rows (votes on one pair of replies are counted together, majority wins);
# - majority: one row per completed item, the raters' majority per pair (granularity=item);
# - weighted: one row per completed item, labelled by Dawid-Skene over rater reliability
#   (aggregation=weighted; server/quality/aggregate.py).
LABELS: dict[str, dict[str, str]] = {
    "judgments": {},
    "majority": {"granularity": "item"},
    "weighted": {"granularity": "item", "aggregation": "weighted"},
}
# Trained on weighted labels, the worker also trains on the majority labels of the same items and
# reports both models' held-out figures (`metrics["compare"]`, model.compare_labels); the model it
# keeps and reports is the weighted one.
COMPARED = {"weighted": "majority"}


@dataclass
class CycleResult:
    pulled: int = 0
    held_back: int = 0
    pulled_compared: int = 0  # rows of the comparison's labels (`--labels weighted`: majority)
    trained: bool = False
    version: int | None = None
    scored: int = 0
    prioritised: int = 0
    judged: int = 0


class Worker:
    def __init__(
        self,
        client: AssayClient,
        store: Store,
        *,
        server: str,
        project_id: str,
        featurizer: Featurizer,
        progress: Progress | None = None,
        labels: str = "judgments",
        judge: AssayClient | None = None,
    ) -> None:
        if labels not in LABELS:
            raise ValueError(f"labels must be one of {', '.join(LABELS)}, not {labels!r}.")
        self.labels = labels
        self.client = client
        self.store = store
        self.server = server
        self.project_id = project_id
        self.featurizer = featurizer
        self.progress = progress
        # `--judge`: a client holding a model account's token (never the trainer's, which cannot judge).
        self.judge = judge

    def _task(self, description: str, total: float | None = None) -> TaskID | None:
        return self.progress.add_task(description, total=total) if self.progress else None

    def _advance(self, task: TaskID | None, completed: float, *, done: bool = False) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, completed=completed, total=completed if done else None)

    def _load(self, store: Store, labels: str) -> State:
        state = store.load(server=self.server, project_id=self.project_id)
        if not state.segments and state.cursor is None:
            state.labels = labels
        if state.labels != labels:
            raise RuntimeError(
                f"{store.directory} holds rows pulled with --labels {state.labels}; run with --labels "
                f"{state.labels}, or use another --data-dir for --labels {labels}."
            )
        return state

    async def cycle(self) -> CycleResult:
        """One pull → train → report → score pass."""
        state = self._load(self.store, self.labels)
        result = CycleResult()
        result.pulled, result.held_back = await self._pull(self.store, state)
        compared: tuple[Store, State] | None = None
        if (labels := COMPARED.get(self.labels)) is not None:
            store = Store(self.store.directory / f"compare-{labels}")
            compared = store, self._load(store, labels)
            result.pulled_compared, _ = await self._pull(*compared)
        result.trained = await self._train(state, compared)
        await self._report(state)
        if state.trained is not None:
            result.version = state.trained.version
        result.scored, result.prioritised = await self._score(state)
        if self.judge is not None:
            result.judged = await self._judge(state, self.judge)
        return result

    async def _pull(self, store: Store, state: State) -> tuple[int, int]:
        path = store.new_segment_path(state)
        task = self._task(f"pulling judgments ({state.labels})")
        pull = await self.client.download_export(
            self.project_id,
            path,
            after=state.cursor,
            ids=True,
            on_rows=lambda n: self._advance(task, n),
            options=LABELS[state.labels],
        )
        self._advance(task, pull.rows, done=True)
        if pull.rows:
            state.segments.append(
                Segment(file=path.name, after=state.cursor, next_cursor=pull.next_cursor, rows=pull.rows)
            )
        else:
            path.unlink(missing_ok=True)
        state.cursor = pull.next_cursor
        store.save(state)
        log.info(
            "pulled %d new rows%s (%d stored in total; export %s)",
            pull.rows,
            "" if store is self.store else f" of {state.labels} labels for the comparison",
            state.rows,
            pull.export_id,
        )
        if pull.held_back:
            log.warning(
                "%d committed judgments are held back by an open transaction on the server; the next pull gets them",
                pull.held_back,
            )
        return pull.rows, pull.held_back

    async def _train(self, state: State, compared: tuple[Store, State] | None) -> bool:
        last = state.trained
        if last is not None and last.segments == len(state.segments) and last.features == self.featurizer.name:
            log.info("no new judgments since the last model (v%s); not training again", last.version or "unreported")
            return False
        if not state.segments:
            log.info("no judgments exported yet; nothing to train on")
            return False
        pairs, n_rows = aggregate(self.store.rows(state))
        task = self._task(f"training on {len(pairs)} pairs")
        try:
            trained = await asyncio.to_thread(train, pairs, self.featurizer, n_judgments=n_rows)
        except NotEnoughData as exc:
            log.info("not training yet: %s", exc)
            return False
        finally:
            self._advance(task, 1, done=True)
        trained.metrics["new_judgments"] = n_rows - (self._rows_at(state, last.segments) if last else 0)
        trained.metrics["labels"] = self.labels
        if compared is not None:
            comparison = await self._compare(pairs, *compared)
            if comparison is not None:
                trained.metrics["compare"] = comparison
        path, digest = save(trained, self.store.models_dir)
        state.trained = TrainedRun(
            features=trained.features,
            cursor_from=None,  # every model is trained on all the data from the start
            cursor_to=state.cursor or "",
            segments=len(state.segments),
            artefact=str(path.resolve()),
            sha256=digest,
            metrics=trained.metrics,
        )
        self.store.save(state)
        m = trained.metrics
        log.info(
            "trained on %d pairs (%d rows, labels: %s) in %.2f s: held-out accuracy %s, log loss %s "
            "(%d pairs held out)",
            m["n_train"],
            n_rows,
            self.labels,
            m["training_seconds"],
            "n/a" if m["accuracy"] is None else f"{m['accuracy']:.3f}",
            "n/a" if m["log_loss"] is None else f"{m['log_loss']:.3f}",
            m["n_validation"],
        )
        return True

    async def _compare(self, pairs: list[Pair], store: Store, state: State) -> dict[str, Any] | None:
        """The kept labels against the comparison's, on the same items and held-out prompts (model.compare_labels)."""
        other, _ = aggregate(store.rows(state))
        labellings = {self.labels: pairs, state.labels: other}
        task = self._task(f"training on {state.labels} labels for the comparison")
        try:
            comparison = await asyncio.to_thread(compare_labels, self.featurizer, labellings)
        except NotEnoughData as exc:
            log.info("no comparison with %s labels yet: %s", state.labels, exc)
            return None
        finally:
            self._advance(task, 1, done=True)
        figures = [comparison[name]["accuracy"] for name in labellings]
        log.info(
            "held-out accuracy %s (%s) vs %s (%s), same %d held-out pairs (%d trained on; labels agree on %s)",
            "n/a" if figures[0] is None else f"{figures[0]:.3f}",
            self.labels,
            "n/a" if figures[1] is None else f"{figures[1]:.3f}",
            state.labels,
            comparison["n_validation"],
            comparison["n_train"],
            "n/a" if comparison["labels_agree"] is None else f"{comparison['labels_agree']:.1%}",
        )
        return comparison

    @staticmethod
    def _rows_at(state: State, segments: int) -> int:
        return sum(s.rows for s in state.segments[:segments])

    async def _report(self, state: State) -> None:
        run = state.trained
        if run is None or run.version is not None:
            return
        report = ModelReport(
            features=run.features,
            cursor_from=run.cursor_from,
            cursor_to=run.cursor_to,
            metrics=run.metrics,
            artefact_path=run.artefact,
            artefact_sha256=run.sha256,
        )
        info = await self.client.report_model(self.project_id, report)
        run.version = info.version
        self.store.save(state)
        if info.created:
            log.info("reported the model as version %d", info.version)
        else:
            log.info("the server already had this run as version %d (a report retried after a restart)", info.version)

    def _scores(self, weights: NDArray[np.float64], items: list[OpenItem]) -> list[Score]:
        scorable = [item for item in items if len(item.candidates) >= 2]
        texts = [[render(c.text if c.text is not None else (c.messages or [])) for c in i.candidates] for i in scorable]
        return [
            Score(item_id=item.id, p=round(p, 6), uncertainty=round(u, 6))
            for item, (p, u) in zip(scorable, score_items(weights, self.featurizer, texts), strict=True)
        ]

    async def _score(self, state: State) -> tuple[int, int]:
        run = state.trained
        if run is None or run.version is None:
            return 0, 0
        if run.features != self.featurizer.name:
            log.warning(
                "model v%d reads %s, not %s; not scoring with it", run.version, run.features, self.featurizer.name
            )
            return 0, 0
        weights = load(Path(run.artefact)).weights
        task = self._task(f"scoring open items with model v{run.version}")
        scored = prioritised = 0
        async for page in self.client.open_items(self.project_id, page_size=SCORE_PAGE):
            scores = await asyncio.to_thread(self._scores, weights, page)
            if scores:
                posted = await self.client.post_scores(self.project_id, run.version, scores)
                scored += posted.scored
                prioritised += posted.prioritised
            self._advance(task, scored)
        self._advance(task, scored, done=True)
        run.scored_version = run.version
        self.store.save(state)
        log.info("scored %d open items with model v%d; %d priorities changed", scored, run.version, prioritised)
        return scored, prioritised

    async def _judge(self, state: State, judge: AssayClient) -> int:
        """Judge the items of the model phase with the current model, its probability as confidence."""
        run = state.trained
        if run is None or run.features != self.featurizer.name:
            log.info("no model to judge with yet; not judging")
            return 0
        weights = load(Path(run.artefact)).weights
        judged = 0
        while judged < JUDGE_LIMIT and (leased := await judge.next_assignment(self.project_id)) is not None:
            texts = [render(c.text if c.text is not None else (c.messages or [])) for c in leased.candidates]
            (best, p), *_ = await asyncio.to_thread(judge_items, weights, self.featurizer, [texts])
            await judge.submit_judgment(leased.id, choice=leased.candidates[best].id, confidence=round(p, 6))
            judged += 1
        log.info("judged %d items of the model phase with model v%s", judged, run.version or "unreported")
        return judged


async def run_forever(worker: Worker, *, interval: float) -> None:
    """Cycle every `interval` seconds; an unreachable or failing (5xx) server is waited out, a 4xx stops it."""
    while True:
        try:
            await worker.cycle()
        except Unreachable as exc:
            log.error("%s; trying again in %.0f s", exc, interval)
        await asyncio.sleep(interval)
