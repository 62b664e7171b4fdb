"""Baseline of the outgoing database: exactly the tables the services made with
create_all before migrations existed (an older database is stamped here, not re-created).

Revision ID: outgoing_0001
Revises:
Create Date: 2026-11-25 05:49:05.124953
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "outgoing_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bank_payout",
        sa.Column("remittance_id", sa.String(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("account_last4", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("remittance_id"),
    )
    op.create_index(op.f("ix_bank_payout_case_id"), "bank_payout", ["case_id"], unique=False)

    op.create_table(
        "case_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rule", sa.String(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "sequence"),
        sa.UniqueConstraint("event_key"),
    )
    op.create_index(op.f("ix_case_event_case_id"), "case_event", ["case_id"], unique=False)

    op.create_table(
        "case_record",
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("status_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_region", sa.String(), nullable=False),
        sa.Column("to_region", sa.String(), nullable=False),
        sa.Column("from_scheme", sa.String(), nullable=False),
        sa.Column("to_scheme", sa.String(), nullable=False),
        sa.Column("person_key", sa.String(), nullable=False),
        sa.Column("id_masked", sa.String(), nullable=False),
        sa.Column("open_key", sa.String(), nullable=True),
        sa.Column("awaiting_what", sa.String(), nullable=True),
        sa.Column("awaiting_from", sa.String(), nullable=True),
        sa.Column("awaiting_by", sa.Date(), nullable=True),
        sa.Column("deadlines", sa.JSON(), nullable=True),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=True),
        sa.Column("terminal", sa.Boolean(), nullable=False),
        sa.Column("application", sa.JSON(), nullable=True),
        sa.Column("facts", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
        sa.UniqueConstraint("open_key"),
    )
    op.create_index(
        op.f("ix_case_record_from_region"), "case_record", ["from_region"], unique=False
    )
    op.create_index(op.f("ix_case_record_person_key"), "case_record", ["person_key"], unique=False)
    op.create_index(op.f("ix_case_record_status"), "case_record", ["status"], unique=False)
    op.create_index(op.f("ix_case_record_to_region"), "case_record", ["to_region"], unique=False)

    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=True),
        sa.Column("case_id", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("topic", sa.String(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "enrolment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("id_number", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("region", sa.String(), nullable=False),
        sa.Column("scheme", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("enrolled_since", sa.Date(), nullable=False),
        sa.Column("suspended_on", sa.Date(), nullable=True),
        sa.Column("arrears_fen", sa.Integer(), nullable=False),
        sa.Column("account_status", sa.String(), nullable=False),
        sa.Column("balance_fen", sa.Integer(), nullable=False),
        sa.Column("contribution_months", sa.Integer(), nullable=False),
        sa.Column("also_active_in", sa.String(), nullable=True),
        sa.Column("transferred_case_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_enrolment_id_number"), "enrolment", ["id_number"], unique=False)
    op.create_index(op.f("ix_enrolment_region"), "enrolment", ["region"], unique=False)

    op.create_table(
        "inbox",
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("from_region", sa.String(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("message_id"),
    )
    op.create_index(op.f("ix_inbox_case_id"), "inbox", ["case_id"], unique=False)

    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("remittance_id", sa.String(), nullable=False),
        sa.Column("leg", sa.String(), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("remittance_id", "leg"),
    )
    op.create_index(op.f("ix_ledger_case_id"), "ledger", ["case_id"], unique=False)

    op.create_table(
        "region_status",
        sa.Column("region", sa.String(), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("region"),
    )


def downgrade() -> None:
    op.drop_table("region_status")
    op.drop_index(op.f("ix_ledger_case_id"), table_name="ledger")

    op.drop_table("ledger")
    op.drop_index(op.f("ix_inbox_case_id"), table_name="inbox")

    op.drop_table("inbox")
    op.drop_index(op.f("ix_enrolment_region"), table_name="enrolment")
    op.drop_index(op.f("ix_enrolment_id_number"), table_name="enrolment")

    op.drop_table("enrolment")
    op.drop_table("dead_letter")
    op.drop_index(op.f("ix_case_record_to_region"), table_name="case_record")
    op.drop_index(op.f("ix_case_record_status"), table_name="case_record")
    op.drop_index(op.f("ix_case_record_person_key"), table_name="case_record")
    op.drop_index(op.f("ix_case_record_from_region"), table_name="case_record")

    op.drop_table("case_record")
    op.drop_index(op.f("ix_case_event_case_id"), table_name="case_event")

    op.drop_table("case_event")
    op.drop_index(op.f("ix_bank_payout_case_id"), table_name="bank_payout")

    op.drop_table("bank_payout")
