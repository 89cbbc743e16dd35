#!/usr/bin/env bash
# Before/after table of what a rater sees on the HH-RLHF sample at 1280x800 on a first visit:
# runs the browser test tests/web/test_rater_shift.py (its above-the-fold measurement, tests/web/fold.py)
# on a temporary checkout of BASE (default: main before the rater work, 5300087) and on this tree,
# then prints both side by side. Needs ../shared/data and chromium; the tests' database is the
# PostgreSQL server at ASSAY_TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres;
# set it empty for the embedded PostgreSQL).
#   bench/fold_compare.sh [BASE]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${1:-5300087}
export ASSAY_TEST_DATABASE_URL=${ASSAY_TEST_DATABASE_URL-postgresql://postgres@127.0.0.1:5432/postgres}
[ -n "$ASSAY_TEST_DATABASE_URL" ] || unset ASSAY_TEST_DATABASE_URL
export ASSAY_HH_SAMPLE=${ASSAY_HH_SAMPLE:-$ROOT/../shared/data/hh-rlhf/harmless-base/test-shared.jsonl.gz}
WORK=$(mktemp -d)
git worktree add --quiet --detach "$WORK/base" "$BASE"
trap 'git worktree remove --force "$WORK/base"; rm -rf "$WORK"' EXIT
cp -r server/static/vendor "$WORK/base/server/static/"
cp tests/web/fold.py tests/web/test_rater_shift.py "$WORK/base/tests/web/"
TEST="tests/web/test_rater_shift.py::TestResponsesFirst::test_first_lines_of_both_responses_above_the_fold_on_hh"
# The old page fails the test's threshold; its report is written before the assertion.
(cd "$WORK/base" && PYTHONPATH="$WORK/base" ASSAY_FOLD_REPORT="$WORK/before.json" \
  "$ROOT/.venv/bin/pytest" -q -p no:cacheprovider "$TEST" >"$WORK/before.log" 2>&1) || true
PYTHONPATH="$ROOT" ASSAY_FOLD_REPORT="$WORK/after.json" "$ROOT/.venv/bin/pytest" -q -p no:cacheprovider "$TEST" \
  >"$WORK/after.log" 2>&1 || { cat "$WORK/after.log"; exit 1; }
[ -s "$WORK/before.json" ] || { cat "$WORK/before.log"; exit 1; }
"$ROOT/.venv/bin/python" -m bench.fold_table "$WORK/before.json" "$WORK/after.json" "$BASE" "$(git rev-parse --short HEAD)"
