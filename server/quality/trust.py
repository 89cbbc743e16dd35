"""Which raters' judgments an export trusts (`raters=trusted`): one definition, as SQL.

A rater is trusted in a project when they hold a membership of it that is not suspended
(`project_members.suspended_at IS NULL`). A rater no longer a member (removed) is not trusted:
nobody vouches for them any more. The rule is evaluated when an export is pulled, from the
snapshot the pull reads: rows already delivered are never retracted (a rater suspended later keeps
the rows earlier pulls delivered), and a `raters=trusted` pull skips, for good, the judgments of
raters untrusted at that moment (a later reinstatement does not deliver them to that cursor; a full
pull without `after` does).
"""

# The condition on a membership row `m`; add further conditions (qualification, ...) here only.
MEMBER_IS_TRUSTED = "m.suspended_at IS NULL"


def trusted_sql(project_id: str, rater_id: str) -> str:
    """A boolean SQL expression: the rater `rater_id` is trusted in project `project_id` (columns)."""
    return (
        f"EXISTS (SELECT 1 FROM project_members m WHERE m.project_id = {project_id} "
        f"AND m.user_id = {rater_id} AND {MEMBER_IS_TRUSTED})"
    )
