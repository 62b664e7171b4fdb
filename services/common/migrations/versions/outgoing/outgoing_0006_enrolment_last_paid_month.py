"""The enrolment record's last paid month: the interruption before a transfer counts from
it, not from the suspension date (R25-R27).

Revision ID: outgoing_0006
Revises: outgoing_0005
Create Date: 2026-12-02 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "outgoing_0006"
down_revision = "outgoing_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrolment", schema=None) as batch_op:
        # Existing records have not reported it: the sheet then says so (None).
        batch_op.add_column(sa.Column("last_paid_month", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enrolment", schema=None) as batch_op:
        batch_op.drop_column("last_paid_month")
