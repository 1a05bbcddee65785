"""Holds remember the dedupe key of the approved text, so a retry after a failed release
is honoured only for what the reviewer approved.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.add_column(sa.Column("release_key", sa.String(length=64), nullable=True))
    op.create_index("ix_holds_release_key", "holds", ["release_key"])
    # Holds approved unedited before this migration keep their old meaning: a retry of the
    # same text after a failed release passes once.
    op.execute(
        "UPDATE holds SET release_key = dedupe_key "
        "WHERE status IN ('sent', 'send_failed') AND (sent_text IS NULL OR sent_text = text)"
    )


def downgrade() -> None:
    op.drop_index("ix_holds_release_key", "holds")
    with op.batch_alter_table("holds") as batch:
        batch.drop_column("release_key")
