"""The transaction id that stamps rows for exports (their `xid` columns), as SQL.

Exports page by it (see exports/service.py); every column that records "which transaction wrote
this" uses this one expression, so they all live in the same id space. `assay_xid()` (created by
the migration `export_integrity`) is the cluster's transaction counter plus `assay_meta.xid_offset`,
which `exports/identity.py:settle()` raises after the database is restored into a younger cluster,
so that a new stamp always sorts after every stamp the backup brought along.
"""

CURRENT_XID = "assay_xid()"
