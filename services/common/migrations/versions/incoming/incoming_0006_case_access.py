"""case_access: the hash of each case's access secret, given to the person once at
acceptance to query the case's progress without an API key (R17).

Revision ID: incoming_0006
Revises: incoming_0005
Create Date: 2026-12-02 15:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "incoming_0006"
down_revision = "incoming_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_access",
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("secret_hash", sa.String(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
    )


def downgrade() -> None:
    op.drop_table("case_access")
