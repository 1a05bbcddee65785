"""PostgreSQL: the account's lock and the candidate copies in one round trip.

A DM's decision on PostgreSQL took three round trips to the server besides BEGIN and
COMMIT: the account's advisory lock, the candidate copies, then the statement that writes.
The lock cannot share the candidates' statement, whose snapshot is taken before it waits
for the lock (a copy another replica committed meanwhile would be missed). A PL/pgSQL
function can: in READ COMMITTED each of its statements takes a fresh snapshot, so the
candidates are read after the lock is held, and its plans are cached per session like a
prepared statement's. Nothing is stored; SQLite is left as it is.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Up to 8 templates (MAX_CANDIDATE_TEMPLATES when this was written; the caller passes its
# own), those sharing the most keys first, the oldest among equals, with every stored copy.
FUNCTION = """
CREATE OR REPLACE FUNCTION dmgate_template_candidates(
    lock_key bigint, keys bigint[], strict bigint[], max_templates integer
) RETURNS TABLE (
    template_id bigint, text_key bigint, signature bytea, features bytea, meaning bytea,
    banded boolean
) LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    -- The index is a heuristic count: not waiting for the WAL flush halves the DM's
    -- latency, and a crash loses at most its last milliseconds (holds stay durable).
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    SELECT s.template_id, s.text_key, s.signature, coalesce(s.features, ''::bytea),
           coalesce(s.meaning, ''::bytea), h.banded
    FROM (SELECT b.template_id, count(*) AS hits, bool_or(b.key = ANY(strict)) AS banded
          FROM lsh_bands AS b WHERE b.key = ANY(keys)
          GROUP BY b.template_id ORDER BY hits DESC, b.template_id
          LIMIT max_templates) AS h
    JOIN template_signatures AS s ON s.template_id = h.template_id
    ORDER BY s.template_id;
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS"
            " dmgate_template_candidates(bigint, bigint[], bigint[], integer)"
        )
