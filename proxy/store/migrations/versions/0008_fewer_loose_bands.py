"""template_reuse indexes 16 loose MinHash bands per kept copy instead of 32: drop the
keys of bands 16-31 that copies stored before kept in `lsh_bands`.

Nothing is rebuilt and no count is lost: loose bands 0-15 are computed exactly as before
(same scope, band numbers and rows), so every stored copy keeps the loose keys new DMs
look up; strict band keys, signatures, features and recipients are untouched. Without
this, the dropped keys would stay for good (retention recomputes a copy's keys from its
signature, and now computes 16 loose ones).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from policies.template_reuse import LOOSE_ROWS, signature_band_keys, template_scope
from proxy.store.template_index import copies_by_template

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE, NOW = 32, 16  # loose bands per copy
BATCH = 1000


def upgrade() -> None:
    conn = op.get_bind()
    drop = sa.text("DELETE FROM lsh_bands WHERE key = :key AND template_id = :tid")
    for rows in copies_by_template(conn, BATCH):
        keys = {
            (key, row.template_id)
            for row in rows
            if len(row.signature) >= BEFORE * LOOSE_ROWS * 4
            for key in signature_band_keys(
                row.signature,
                f"{template_scope(row.platform, row.account)}~loose",
                BEFORE,
                LOOSE_ROWS,
            )[NOW:]
        }
        if keys:
            conn.execute(drop, [{"key": k, "tid": t} for k, t in keys])


def downgrade() -> None:
    """Nothing to restore: copies indexed after the downgrade get all 32 bands again, and
    earlier copies stay findable by their first 16."""
