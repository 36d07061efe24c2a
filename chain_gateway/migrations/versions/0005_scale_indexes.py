"""scale indexes: queries on the payment path that grew with the ledger (issue 7)

- ``mirror_payments (status, block_number)`` replaces ``(status)``: the indexer's query for
  the final statuses in blocks (a, b], run after every committed range, walked every ACSC
  row ever mirrored through the status index on SQLite; now it seeks each status's range.
  Lists and counts by status use the prefix.
- ``mirror_payments (queue_seq) WHERE queue_seq IS NOT NULL``: the next queue sequence
  (MAX) without a table scan.
- ``payment_intake (debtor_agent, received_at)``: the velocity rule's window (every
  currency) without reading the debtor's whole history.
- ``mirror_statement_lines (participant, currency, at, block_number)``: a statement since a
  time seeks the window's first block instead of walking the balance's history.

Index operations only (no table rewrite): the same statements on SQLite and PostgreSQL.

Revision ID: 0005_scale_indexes
Revises: 0004_fx
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_scale_indexes"
down_revision: str | Sequence[str] | None = "0004_fx"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_QUEUED = sa.text("queue_seq IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_mirror_payments_status_block", "mirror_payments", ["status", "block_number"], unique=False)
    op.drop_index("ix_mirror_payments_status", table_name="mirror_payments")
    op.create_index("ix_mirror_payments_queue_seq", "mirror_payments", ["queue_seq"], unique=False,
                    sqlite_where=_QUEUED, postgresql_where=_QUEUED)
    op.create_index("ix_payment_intake_debtor_time", "payment_intake", ["debtor_agent", "received_at"], unique=False)
    op.create_index("ix_mirror_statement_lines_time", "mirror_statement_lines",
                    ["participant", "currency", "at", "block_number"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_mirror_statement_lines_time", table_name="mirror_statement_lines")
    op.drop_index("ix_payment_intake_debtor_time", table_name="payment_intake")
    op.drop_index("ix_mirror_payments_queue_seq", table_name="mirror_payments")
    op.create_index("ix_mirror_payments_status", "mirror_payments", ["status"], unique=False)
    op.drop_index("ix_mirror_payments_status_block", table_name="mirror_payments")
