"""Direct messages dmgate saw sent (Mastodon direct statuses), so an edit of one is judged
as a new DM to its recipients.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sent_messages",
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=128), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("platform", "account", "message_id"),
    )
    op.create_index("ix_sent_messages_seen_at", "sent_messages", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_sent_messages_seen_at", "sent_messages")
    op.drop_table("sent_messages")
