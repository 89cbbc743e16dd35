#!/usr/bin/env bash
# `make bench` on two commits, interleaved, each in its own throw-away worktree with its own setup;
# then bench/compare.py prints every figure as a ratio to the same run's pgbench and to the base.
#
#   bench/before_after.sh BASE [HEAD] [ROUNDS] [bench options]   e.g. bench/before_after.sh b1f0ebf HEAD 2
#
# Runs go base, head, base, head, ... so that a slow spell of a shared machine falls on both.
# Both sides run this tree's bench/ (the driver is copied into each worktree), so only the
# server code differs. A run that fails is logged and left out of the table.
# Label Studio is not run here (BENCH_LABEL_STUDIO=0): it measures neither commit.
# Results: bench/results/before-after/{base,head}-N.json and table.md.
#
# BENCH_MODULE=bench.requests measures the rater loop's cost per annotation instead of `make bench`:
# `python -m bench.requests --pair BASE_TREE HEAD_TREE [options]` starts both commits' servers at once
# and sends them the same blocks of sequential annotations in turn (the API loop and the rater page's
# swap), reading each server's CPU time, its PostgreSQL backends' CPU time and pg_stat_statements per
# block; ROUNDS is then unused (--blocks sets how many). Results: pair.json and table.md in $OUT.
# See docs/BENCHMARKS.md, "The rater loop's cost per annotation, two servers side by side".
# BENCH_VENV=/path/.venv links that virtualenv into each worktree instead of `make setup` (the same
# libraries on both sides; only the server code differs).
set -euo pipefail
ROOT="$(git rev-parse --show-toplevel)"
BASE="${1:?usage: bench/before_after.sh BASE [HEAD] [ROUNDS]}"
HEAD_REV="${2:-HEAD}"
ROUNDS="${3:-2}"
shift $(( $# < 3 ? $# : 3 ))  # anything after ROUNDS goes to `python -m bench`
OUT="${BENCH_OUT:-$ROOT/bench/results/before-after}"
MODULE="${BENCH_MODULE:-bench}"
mkdir -p "$OUT"

worktree() {  # a detached worktree of $1 under /tmp, set up once
  local rev dir
  rev="$(git -C "$ROOT" rev-parse --short "$1")"
  dir="/tmp/assay-bench-$rev"
  [[ -d "$dir" ]] || git -C "$ROOT" worktree add --detach "$dir" "$rev" >&2
  if [[ -n "${BENCH_VENV:-}" ]]; then
    [[ -e "$dir/.venv" ]] || ln -s "$BENCH_VENV" "$dir/.venv"
  else
    make -C "$dir" setup >"$OUT/setup-$rev.log" 2>&1 || { cat "$OUT/setup-$rev.log" >&2; exit 1; }
  fi
  cp "$ROOT"/bench/*.py "$dir/bench/"
  echo "$dir"
}

base_dir="$(worktree "$BASE")"
head_dir="$(worktree "$HEAD_REV")"
echo "base $(git -C "$base_dir" log --oneline -1)"
echo "head $(git -C "$head_dir" log --oneline -1)"
if [[ "$MODULE" == bench.requests ]]; then
  "$ROOT/.venv/bin/python" -m bench.requests --pair "$base_dir" "$head_dir" --json "$OUT/pair.json" "$@" \
    | tee "$OUT/table.md"
  exit "${PIPESTATUS[0]}"
fi
for round in $(seq 1 "$ROUNDS"); do
  for side in base head; do
    dir="${side}_dir"
    echo "$(date -u +%H:%M:%S) round $round: $side"
    rm -f "${!dir}/bench/results/latest.json"
    if (cd "${!dir}" && BENCH_LABEL_STUDIO=0 .venv/bin/python -m bench "$@" >"$OUT/$side-$round.log" 2>&1); then
      cp "${!dir}/bench/results/latest.json" "$OUT/$side-$round.json"
    else
      echo "  $side round $round failed: see $OUT/$side-$round.log"
    fi
  done
done
"$ROOT/.venv/bin/python" -m bench.compare --base "$OUT"/base-*.json --head "$OUT"/head-*.json | tee "$OUT/table.md"
