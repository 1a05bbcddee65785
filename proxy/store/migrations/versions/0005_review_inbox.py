"""The review inbox: profile details for reviewers, the campaign (template) and matched
policy names of each hold, and an index for the decisions export.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PROFILE_COLUMNS = ("username", "name", "description", "location")


def upgrade() -> None:
    with op.batch_alter_table("profiles") as batch:
        for column in _PROFILE_COLUMNS:
            batch.add_column(sa.Column(column, sa.Text, nullable=True))
    op.create_index("ix_profiles_updated", "profiles", ["updated_at"])
    with op.batch_alter_table("holds") as batch:
        batch.add_column(sa.Column("template_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("policy_names", sa.String(length=256), nullable=True))
    op.create_index("ix_holds_template_status", "holds", ["template_id", "status"])
    op.create_index("ix_holds_decided", "holds", ["decided_at"])


def downgrade() -> None:
    op.drop_index("ix_holds_decided", "holds")
    op.drop_index("ix_holds_template_status", "holds")
    with op.batch_alter_table("holds") as batch:
        batch.drop_column("policy_names")
        batch.drop_column("template_id")
    op.drop_index("ix_profiles_updated", "profiles")
    with op.batch_alter_table("profiles") as batch:
        for column in _PROFILE_COLUMNS:
            batch.drop_column(column)
