"""risk: held payments (risk_holds) and the hash-chained audit trail (audit_trail)

Written by hand to match ``chain_gateway.risk.holds.RiskHold`` and
``chain_gateway.audit_trail.AuditEntry``, plus the triggers that make the audit trail
append-only (SQLite and PostgreSQL; the hash chain is the proof, the triggers stop
accidents).

Revision ID: 0003_risk
Revises: 0002_gateway
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import chain_gateway.db

revision: str = "0003_risk"
down_revision: str | Sequence[str] | None = "0002_gateway"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of chain_gateway.audit_trail's trigger statements (a migration must not change
# when the module does).
SQLITE_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS audit_trail_no_update BEFORE UPDATE ON audit_trail "
    "BEGIN SELECT RAISE(ABORT, 'audit_trail is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_trail_no_delete BEFORE DELETE ON audit_trail "
    "BEGIN SELECT RAISE(ABORT, 'audit_trail is append-only'); END",
)
POSTGRES_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION audit_trail_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit_trail is append-only'; END $$",
    "CREATE TRIGGER audit_trail_no_change BEFORE UPDATE OR DELETE ON audit_trail "
    "FOR EACH ROW EXECUTE FUNCTION audit_trail_append_only()",
)
SQLITE_DROP_TRIGGERS = ("DROP TRIGGER IF EXISTS audit_trail_no_update", "DROP TRIGGER IF EXISTS audit_trail_no_delete")
POSTGRES_DROP_TRIGGERS = ("DROP TRIGGER IF EXISTS audit_trail_no_change ON audit_trail",
                          "DROP FUNCTION IF EXISTS audit_trail_append_only()")


def upgrade() -> None:
    op.create_table(
        "risk_holds",
        sa.Column("uetr", sa.String(length=36), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("reason_code", sa.String(length=4), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("matched", sa.Text(), nullable=False),
        sa.Column("created_at", chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", chain_gateway.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision", sa.String(length=8), nullable=True),
        sa.PrimaryKeyConstraint("uetr", name=op.f("pk_risk_holds")),
    )
    with op.batch_alter_table("risk_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_risk_holds_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_risk_holds_decision"), ["decision"], unique=False)

    op.create_table(
        "audit_trail",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_trail")),
        sa.UniqueConstraint("row_hash", name=op.f("uq_audit_trail_row_hash")),
    )
    with op.batch_alter_table("audit_trail", schema=None) as batch_op:
        batch_op.create_index("ix_audit_trail_action", ["action"], unique=False)
        batch_op.create_index("ix_audit_trail_actor", ["actor"], unique=False)

    dialect = op.get_bind().dialect.name
    for statement in SQLITE_TRIGGERS if dialect == "sqlite" else POSTGRES_TRIGGERS if dialect == "postgresql" else ():
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in (SQLITE_DROP_TRIGGERS if dialect == "sqlite"
                      else POSTGRES_DROP_TRIGGERS if dialect == "postgresql" else ()):
        op.execute(statement)
    with op.batch_alter_table("audit_trail", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_trail_actor")
        batch_op.drop_index("ix_audit_trail_action")
    op.drop_table("audit_trail")
    with op.batch_alter_table("risk_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_risk_holds_decision"))
        batch_op.drop_index(batch_op.f("ix_risk_holds_created_at"))
    op.drop_table("risk_holds")
