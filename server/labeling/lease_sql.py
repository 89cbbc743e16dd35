"""How a lease row is made, in one place: the SQL every pick ends with (the human pick, the gold
pick, a model judge's pick). A pick's statement has a CTE `bumped` that took a slot on the picked
item (`id` in its RETURNING); this fragment inserts the lease on it, with the candidates in a fresh
random order (the page shows them in that order, and position bias is measured against it) and
`:lease_seconds` to run. It holds no braces, so it can go into a `str.format` template."""


def insert_lease(*, gold: bool = False) -> str:
    """`INSERT INTO assignments ... SELECT ... FROM bumped b`, without RETURNING; `gold` marks a gold lease."""
    column, value = (", gold", ", true") if gold else ("", "")
    return f"""INSERT INTO assignments
            (id, project_id, item_id, rater_id, status, shown_order, leased_at, expires_at{column})
        SELECT gen_random_uuid(), :project_id, b.id, :rater_id, 'leased',
               ARRAY(SELECT c.id FROM candidates c WHERE c.item_id = b.id ORDER BY random()),
               clock_timestamp(), clock_timestamp() + make_interval(secs => :lease_seconds){value}
        FROM bumped b"""
