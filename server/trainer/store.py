"""The worker's data directory: pulled export segments, model artefacts, and its state file.

    state.json           the cursor, the segments it covers, the last model (written atomically)
    segments/NNNNNN.jsonl  one file per pull that brought rows, in pull order
    models/*.npz          artefacts, named by their sha256
    compare-majority/     with --labels weighted: the majority labels of the comparison, a store of its
                          own (state.json, segments/; no models), pulled in the same cycle

A crash can only leave a segment file that the state does not list yet: it is ignored, and the
next pull (from the state's cursor, which has not moved) writes the same range again.
"""

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_VERSION = 1


@dataclass
class Segment:
    file: str
    after: str | None
    next_cursor: str
    rows: int


@dataclass
class TrainedRun:
    """The last model trained here: what data it saw and, once reported, the version it got."""

    features: str
    cursor_from: str | None
    cursor_to: str
    segments: int  # how many segments it was trained on
    artefact: str
    sha256: str
    metrics: dict[str, Any]
    version: int | None = None
    scored_version: int | None = None


@dataclass
class State:
    server: str
    project_id: str
    cursor: str | None = None
    labels: str = "judgments"  # which rows the segments hold (worker.LABELS); one kind per data directory
    segments: list[Segment] = field(default_factory=list)
    trained: TrainedRun | None = None

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.segments)


class Store:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.segments_dir = directory / "segments"
        self.models_dir = directory / "models"
        self.state_path = directory / "state.json"

    def load(self, *, server: str, project_id: str) -> State:
        """The stored state, or a fresh one; refuses a directory that belongs to another project."""
        if not self.state_path.exists():
            return State(server=server, project_id=project_id)
        raw = json.loads(self.state_path.read_text())
        if raw.get("project_id") != project_id:
            raise RuntimeError(
                f"{self.directory} holds the data of project {raw.get('project_id')}; "
                "use another --data-dir for each project."
            )
        trained = raw.get("trained")
        return State(
            server=raw["server"],
            project_id=raw["project_id"],
            cursor=raw.get("cursor"),
            labels=raw.get("labels", "judgments"),
            segments=[Segment(**s) for s in raw.get("segments", [])],
            trained=TrainedRun(**trained) if trained else None,
        )

    def save(self, state: State) -> None:
        """Write the state atomically: a new file, fsynced, renamed over the old one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        data = {"state_version": STATE_VERSION, **asdict(state)}
        tmp = self.state_path.with_suffix(".tmp")
        with tmp.open("w") as out:
            json.dump(data, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.state_path)

    def new_segment_path(self, state: State) -> Path:
        """Where the next pull is written (a leftover of a crashed pull is simply overwritten)."""
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        return self.segments_dir / f"{len(state.segments):06d}.jsonl"

    def rows(self, state: State) -> Iterator[dict[str, Any]]:
        """The rows as the server holds them now: every segment in pull order, each revised
        judgment's rows replaced by those of its latest revision (`latest`)."""
        return latest(self._segment_rows(state))

    def _segment_rows(self, state: State) -> Iterator[tuple[int, dict[str, Any]]]:
        for number, segment in enumerate(state.segments):
            with (self.segments_dir / segment.file).open("rb") as lines:
                for line in lines:
                    if line.strip():
                        yield number, json.loads(line)


def latest(rows: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Per `judgment_id` (per `item_id` in item-granularity rows), the rows of its highest
    `revision` (`aggregate_revision`; a later pull's rows of the same revision replace an earlier
    pull's); a `deleted` revision drops the judgment (item). Rows without either id (pulled
    without ids=true) are kept as they are."""
    kept: dict[str, tuple[int, int, list[dict[str, Any]]]] = {}
    plain: list[dict[str, Any]] = []
    for segment, row in rows:
        if row.get("judgment_id") is not None:
            key, revision = "j:" + str(row["judgment_id"]), int(row["revision"])
        elif row.get("item_id") is not None:
            key, revision = "i:" + str(row["item_id"]), int(row["aggregate_revision"])
        else:
            plain.append(row)
            continue
        deleted = bool(row.get("deleted"))
        stored = kept.get(key)
        if stored is not None and (revision < stored[0] or (revision == stored[0] and segment == stored[1])):
            if revision == stored[0] and not deleted:
                stored[2].append(row)
            continue
        kept[key] = (revision, segment, [] if deleted else [row])
    yield from plain
    for _, _, judgment_rows in kept.values():
        yield from judgment_rows
