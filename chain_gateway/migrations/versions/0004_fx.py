"""fx: the quote book (fx_quotes) and the FX outbox (fx_payments)

Written by hand to match ``chain_gateway.fx.FxQuoteRecord`` and ``chain_gateway.fx.FxPaymentEntry``.
Exact integers (rate, capacity, amounts) use db.ExactInt: NUMERIC(78, 0) on
PostgreSQL, decimal text elsewhere.

Revision ID: 0004_fx
Revises: 0003_risk
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import chain_gateway.db
import chain_gateway.outbox.models

revision: str = "0004_fx"
down_revision: str | Sequence[str] | None = "0003_risk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fx_quotes",
        sa.Column("quote_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=42), nullable=False),
        sa.Column("provider_bic", sa.String(length=11), nullable=False),
        sa.Column("debit_currency", sa.String(length=3), nullable=False),
        sa.Column("credit_currency", sa.String(length=3), nullable=False),
        sa.Column("rate", chain_gateway.db.ExactInt(length=80), nullable=False),
        sa.Column("capacity", chain_gateway.db.ExactInt(length=80), nullable=False),
        sa.Column("expiry", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=65), nullable=False),
        sa.Column("signed_by", sa.String(length=8), nullable=False),
        sa.Column("created_at", chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("quote_id", name=op.f("pk_fx_quotes")),
    )
    with op.batch_alter_table("fx_quotes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fx_quotes_provider"), ["provider"], unique=False)
        batch_op.create_index(batch_op.f("ix_fx_quotes_expiry"), ["expiry"], unique=False)
    op.create_table(
        "fx_payments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uetr", sa.String(length=36), nullable=False),
        sa.Column("debtor", sa.String(length=42), nullable=False),
        sa.Column("creditor", sa.String(length=42), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", chain_gateway.db.ExactInt(length=80), nullable=False),
        sa.Column("quote_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=42), nullable=False),
        sa.Column("debit_currency", sa.String(length=3), nullable=False),
        sa.Column("max_debit", chain_gateway.db.ExactInt(length=80), nullable=False),
        sa.Column("deadline", sa.BigInteger(), nullable=False),
        sa.Column("instruction_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=65), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fx_payments")),
        sa.UniqueConstraint("uetr", name=op.f("uq_fx_payments_uetr")),
    )
    with op.batch_alter_table("fx_payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fx_payments_quote_id"), ["quote_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_fx_payments_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fx_payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fx_payments_state"))
        batch_op.drop_index(batch_op.f("ix_fx_payments_quote_id"))
    op.drop_table("fx_payments")
    with op.batch_alter_table("fx_quotes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fx_quotes_expiry"))
        batch_op.drop_index(batch_op.f("ix_fx_quotes_provider"))
    op.drop_table("fx_quotes")
