#!/bin/bash
# usage: pgss_run.sh TREE OUT
set -e
P="psql -U postgres -h 127.0.0.1 -p 55433 -d postgres -Atq"
$P -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" -c "SELECT pg_stat_statements_reset()" >/dev/null
(cd $1 && BENCH_LABEL_STUDIO=0 BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:55433/postgres .venv/bin/python -m bench --quick --duration 20 --phases import,swap --no-pgbench > $2.log 2>&1)
$P -F $'\t' -c "SELECT calls, plans, round(total_plan_time::numeric,1), round(total_exec_time::numeric,1), round((total_exec_time/calls)::numeric,4), shared_blks_hit+shared_blks_read+shared_blks_dirtied, wal_records, left(regexp_replace(query, '\s+', ' ', 'g'), 160) FROM pg_stat_statements WHERE calls >= 300 ORDER BY total_exec_time DESC LIMIT 40" > $2.pgss
