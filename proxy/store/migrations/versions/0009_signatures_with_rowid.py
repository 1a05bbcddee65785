"""SQLite: template_signatures becomes a rowid table, a quarter of its size.

A kept copy with campaign features (0007) is a ~1.1 KB row. A WITHOUT ROWID table stores
rows in an index b-tree, which keeps at most ~1 KB of a row in its page (4 KiB pages) and
moves the rest to an overflow page of its own: every copy took a whole extra page (measured:
44 MiB of pages for 10.5 MiB of rows at 10k indexed DMs, most of the database, and a page
more to read per candidate copy). A rowid table keeps such rows whole in its pages; the
primary key (template_id, text_key) becomes its index. Nothing else changes: the same
columns, key and rows (copied in template order). PostgreSQL has no such distinction and is
left as it is.

The copy rewrites the table once (about a minute per million kept copies).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "template_id, text_key, signature, features, meaning"


def _rebuild(with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_table(
        "template_signatures_0008",
        sa.Column("template_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("text_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("features", sa.LargeBinary(), nullable=True),
        sa.Column("meaning", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("template_id", "text_key"),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(
        f"INSERT INTO template_signatures_0008 ({COLUMNS}) SELECT {COLUMNS}"
        " FROM template_signatures ORDER BY template_id, text_key"
    )
    op.drop_table("template_signatures")
    op.rename_table("template_signatures_0008", "template_signatures")


def upgrade() -> None:
    _rebuild(with_rowid=True)


def downgrade() -> None:
    _rebuild(with_rowid=False)
