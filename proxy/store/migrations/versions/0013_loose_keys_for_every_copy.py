"""template_reuse finds a long text's campaign by its loose MinHash keys alone (no longer
by its 21 MinHash band keys): give every stored copy its 16 loose keys.

Copies indexed since 0007 have them already (a long text's); copies indexed before 0007
have only MinHash band keys, which a long text no longer looks up, so without this their
templates would stop being found and their counts would start again. A key another
template holds is left to it (the latest template takes a loose key). A short text's copy
gets loose keys too (its length is not stored): a long text that finds it that way must
still pass the resemblance or containment test to join it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from policies.template_reuse import loose_band_keys, template_scope
from proxy.store.template_index import copies_by_template

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    conn = op.get_bind()
    add = sa.text(
        "INSERT INTO lsh_bands (key, template_id) VALUES (:key, :tid) ON CONFLICT (key) DO NOTHING"
    )
    for rows in copies_by_template(conn, BATCH):
        keys: dict[int, int] = {}
        for row in rows:
            scope = template_scope(row.platform, row.account)
            for key in loose_band_keys(row.signature, scope):
                keys.setdefault(key, row.template_id)  # one row per key and statement
        if keys:
            conn.execute(add, [{"key": k, "tid": t} for k, t in keys.items()])


def downgrade() -> None:
    """Nothing to undo: the loose keys are the ones long texts have always indexed."""
