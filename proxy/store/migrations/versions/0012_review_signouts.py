"""Review sessions signed out before they expired (`review_signouts`).

A review session cookie is self-contained and signed, so signing out only asked the
browser to forget it: a copy of the cookie kept working until it expired. A sign-out is
now kept in the store (the digest of the session's id) until then.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "review_signouts",
        sa.Column("session_sha256", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("session_sha256"),
    )


def downgrade() -> None:
    op.drop_table("review_signouts")
