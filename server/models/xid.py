"""The transaction id that stamps rows for exports (their `xid` columns), as SQL.

Exports page by it (see exports/service.py); every column that records "which transaction wrote
this" uses this one expression, so they all live in the same id space.
"""

CURRENT_XID = "(pg_current_xact_id()::text)::bigint"
