"""Outbound contacts: whom each account has tried to DM, first when, whether cold, and when
a DM first reached them (for the first_contact_pitch and burst policies).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=128), nullable=False),
        sa.Column("recipient", sa.String(length=128), nullable=False),
        sa.Column("first_at", sa.Float(), nullable=False),
        sa.Column("cold", sa.Boolean(), nullable=False),
        sa.Column("reached_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("platform", "account", "recipient"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_contacts_account_first", "contacts", ["platform", "account", "first_at"])


def downgrade() -> None:
    op.drop_index("ix_contacts_account_first", "contacts")
    op.drop_table("contacts")
