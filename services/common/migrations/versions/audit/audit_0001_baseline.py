"""Baseline of the audit database: exactly the tables the services made with
create_all before migrations existed (an older database is stamped here, not re-created).

Revision ID: audit_0001
Revises:
Create Date: 2026-11-25 05:49:06.162037
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "audit_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_conflict",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("record_json", sa.Text(), nullable=False),
        sa.Column("record_sha256", sa.String(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "side", "sequence", "record_sha256"),
    )
    op.create_index(op.f("ix_audit_conflict_case_id"), "audit_conflict", ["case_id"], unique=False)

    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("record_json", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(), nullable=True),
        sa.Column("hash", sa.String(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "side", "sequence"),
    )
    op.create_index(op.f("ix_audit_entry_case_id"), "audit_entry", ["case_id"], unique=False)

    op.create_table(
        "audit_rejected",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("topic", sa.String(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.Integer(), nullable=True),
        sa.Column("kafka_key", sa.String(), nullable=True),
        sa.Column("raw_sha256", sa.String(), nullable=False),
        sa.Column("raw_size", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("audit_rejected")
    op.drop_index(op.f("ix_audit_entry_case_id"), table_name="audit_entry")

    op.drop_table("audit_entry")
    op.drop_index(op.f("ix_audit_conflict_case_id"), table_name="audit_conflict")

    op.drop_table("audit_conflict")
