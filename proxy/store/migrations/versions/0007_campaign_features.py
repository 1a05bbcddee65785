"""Campaign features for template_reuse: each kept copy of a template also stores its
5-gram/link-host hashes (containment in the campaign) and its sentence embedding (meaning).

No rebuild and no loss of counts: MinHash signatures, band keys and recipients are
unchanged (ASCII texts normalise and hash exactly as before), so every template and its
distinct recipients keep matching and counting. Copies stored before this migration have
NULL features; their campaigns gain the new tests as new copies join (up to the kept-copy
limit) and age out with the window like any template.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("template_signatures") as batch:
        batch.add_column(sa.Column("features", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("meaning", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("template_signatures") as batch:
        batch.drop_column("meaning")
        batch.drop_column("features")
