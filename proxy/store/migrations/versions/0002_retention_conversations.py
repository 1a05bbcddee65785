"""Indexes that let retention prune old rows in bounded batches without scanning, and
conversation members (for sends that name only a conversation).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_template_recipients_last_seen", "template_recipients", ["last_seen"])
    op.create_index("ix_follows_followed_at", "follows", ["followed_at"])
    op.create_index("ix_holds_created", "holds", ["created_at"])
    op.create_index("ix_templates_first_seen", "templates", ["first_seen"])
    op.create_index("ix_outbox_created", "notification_outbox", ["created_at"])
    op.create_table(
        "conversations",
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=256), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("platform", "conversation_id"),
    )


def downgrade() -> None:
    op.drop_table("conversations")
    op.drop_index("ix_outbox_created", "notification_outbox")
    op.drop_index("ix_templates_first_seen", "templates")
    op.drop_index("ix_holds_created", "holds")
    op.drop_index("ix_follows_followed_at", "follows")
    op.drop_index("ix_template_recipients_last_seen", "template_recipients")
