"""Mirror tables: chain-derived state, event logs, checkpoints and processed-block keys.

The lead regenerates the initial migration of all gateway tables at integration; until then
this revision creates the mirror's tables only.

Revision ID: 0001_mirror
Revises: (none)
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import chain_gateway.db
import chain_gateway.mirror.types

revision: str = '0001_mirror'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('mirror_balances',
    sa.Column('participant', sa.String(length=42), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', chain_gateway.db.ExactInt(length=80), nullable=False),
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('participant', 'currency', name=op.f('pk_mirror_balances'))
    )
    with op.batch_alter_table('mirror_balances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mirror_balances_block_number'), ['block_number'], unique=False)

    op.create_table('mirror_bilateral_limits',
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.Column('debtor', sa.String(length=42), nullable=False),
    sa.Column('creditor', sa.String(length=42), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('max_daily', chain_gateway.db.ExactInt(length=80), nullable=False),
    sa.Column('tx_hash', sa.String(length=66), nullable=False),
    sa.Column('at', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('block_number', 'log_index', name=op.f('pk_mirror_bilateral_limits'))
    )
    with op.batch_alter_table('mirror_bilateral_limits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mirror_bilateral_limits_debtor'), ['debtor'], unique=False)

    op.create_table('mirror_blocks',
    sa.Column('chain_id', sa.BigInteger(), nullable=False),
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('block_hash', sa.String(length=66), nullable=False),
    sa.Column('parent_hash', sa.String(length=66), nullable=False),
    sa.Column('timestamp', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('chain_id', 'block_number', name=op.f('pk_mirror_blocks'))
    )
    op.create_table('mirror_checkpoints',
    sa.Column('chain_id', sa.BigInteger(), nullable=False),
    sa.Column('ledger', sa.String(length=42), nullable=False),
    sa.Column('registry_address', sa.String(length=42), nullable=False),
    sa.Column('deploy_block', sa.BigInteger(), nullable=False),
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('block_hash', sa.String(length=66), nullable=False),
    sa.Column('head_block', sa.BigInteger(), nullable=False),
    sa.Column('final_block', sa.BigInteger(), nullable=False),
    sa.Column('confirmation_depth', sa.Integer(), nullable=False),
    sa.Column('updated_at', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('chain_id', 'ledger', name=op.f('pk_mirror_checkpoints'))
    )
    op.create_table('mirror_funding',
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.Column('participant', sa.String(length=42), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('amount', chain_gateway.db.ExactInt(length=80), nullable=False),
    sa.Column('reference', sa.String(length=66), nullable=False),
    sa.Column('tx_hash', sa.String(length=66), nullable=False),
    sa.Column('at', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('block_number', 'log_index', name=op.f('pk_mirror_funding'))
    )
    with op.batch_alter_table('mirror_funding', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mirror_funding_participant'), ['participant'], unique=False)

    op.create_table('mirror_limits',
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.Column('participant', sa.String(length=42), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('max_per_payment', chain_gateway.db.ExactInt(length=80), nullable=False),
    sa.Column('max_daily_outflow', chain_gateway.db.ExactInt(length=80), nullable=False),
    sa.Column('tx_hash', sa.String(length=66), nullable=False),
    sa.Column('at', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('block_number', 'log_index', name=op.f('pk_mirror_limits'))
    )
    with op.batch_alter_table('mirror_limits', schema=None) as batch_op:
        batch_op.create_index('ix_mirror_limits_participant_currency', ['participant', 'currency'], unique=False)

    op.create_table('mirror_participant_events',
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=42), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('bic', sa.String(length=11), nullable=True),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('roles', sa.SmallInteger(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('tx_hash', sa.String(length=66), nullable=False),
    sa.Column('at', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('block_number', 'log_index', name=op.f('pk_mirror_participant_events'))
    )
    with op.batch_alter_table('mirror_participant_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mirror_participant_events_address'), ['address'], unique=False)

    op.create_table('mirror_participants',
    sa.Column('address', sa.String(length=42), nullable=False),
    sa.Column('bic', sa.String(length=11), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('roles', sa.SmallInteger(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('registered_block', sa.BigInteger(), nullable=False),
    sa.Column('registered_log_index', sa.Integer(), nullable=False),
    sa.Column('registered_tx', sa.String(length=66), nullable=False),
    sa.Column('registered_at', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_block', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('address', name=op.f('pk_mirror_participants')),
    sa.UniqueConstraint('bic', name=op.f('uq_mirror_participants_bic'))
    )
    with op.batch_alter_table('mirror_participants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mirror_participants_last_block'), ['last_block'], unique=False)
        batch_op.create_index(batch_op.f('ix_mirror_participants_registered_block'), ['registered_block'], unique=False)

    op.create_table('mirror_payment_events',
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.Column('uetr', sa.String(length=36), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=4), nullable=False),
    sa.Column('effective', sa.Boolean(), nullable=False),
    sa.Column('reason_code', sa.String(length=4), nullable=True),
    sa.Column('reject_selector', sa.String(length=10), nullable=True),
    sa.Column('debtor', sa.String(length=42), nullable=True),
    sa.Column('creditor', sa.String(length=42), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('amount', chain_gateway.db.ExactInt(length=80), nullable=True),
    sa.Column('flags', sa.SmallInteger(), nullable=True),
    sa.Column('held', sa.Boolean(), nullable=True),
    sa.Column('queue_seq', sa.BigInteger(), nullable=True),
    sa.Column('instruction_hash', sa.String(length=66), nullable=True),
    sa.Column('fx_quote_id', sa.String(length=66), nullable=True),
    sa.Column('fx_provider', sa.String(length=42), nullable=True),
    sa.Column('debit_currency', sa.String(length=3), nullable=True),
    sa.Column('debit_amount', chain_gateway.db.ExactInt(length=80), nullable=True),
    sa.Column('tx_hash', sa.String(length=66), nullable=False),
    sa.Column('at', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('ACSP', 'PDNG', 'ACSC', 'RJCT', 'CANC')", name=op.f('ck_mirror_payment_events_status')),
    sa.PrimaryKeyConstraint('block_number', 'log_index', name=op.f('pk_mirror_payment_events'))
    )
    with op.batch_alter_table('mirror_payment_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mirror_payment_events_uetr'), ['uetr'], unique=False)

    op.create_table('mirror_payments',
    sa.Column('uetr', sa.String(length=36), nullable=False),
    sa.Column('debtor', sa.String(length=42), nullable=True),
    sa.Column('creditor', sa.String(length=42), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('amount', chain_gateway.db.ExactInt(length=80), nullable=True),
    sa.Column('flags', sa.SmallInteger(), nullable=True),
    sa.Column('held', sa.Boolean(), nullable=False),
    sa.Column('queue_seq', sa.BigInteger(), nullable=True),
    sa.Column('instruction_hash', sa.String(length=66), nullable=True),
    sa.Column('fx_quote_id', sa.String(length=66), nullable=True),
    sa.Column('fx_provider', sa.String(length=42), nullable=True),
    sa.Column('debit_currency', sa.String(length=3), nullable=True),
    sa.Column('debit_amount', chain_gateway.db.ExactInt(length=80), nullable=True),
    sa.Column('status', sa.String(length=4), nullable=False),
    sa.Column('chain_status', sa.SmallInteger(), nullable=False),
    sa.Column('reason_code', sa.String(length=4), nullable=True),
    sa.Column('reject_selector', sa.String(length=10), nullable=True),
    sa.Column('tx_hash', sa.String(length=66), nullable=False),
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.Column('first_block', sa.BigInteger(), nullable=False),
    sa.Column('first_log_index', sa.Integer(), nullable=False),
    sa.Column('last_block', sa.BigInteger(), nullable=False),
    sa.Column('created_at', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('ACSP', 'PDNG', 'ACSC', 'RJCT', 'CANC')", name=op.f('ck_mirror_payments_status')),
    sa.PrimaryKeyConstraint('uetr', name=op.f('pk_mirror_payments'))
    )
    with op.batch_alter_table('mirror_payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mirror_payments_block_number'), ['block_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_mirror_payments_creditor'), ['creditor'], unique=False)
        batch_op.create_index(batch_op.f('ix_mirror_payments_debtor'), ['debtor'], unique=False)
        batch_op.create_index('ix_mirror_payments_position', ['first_block', 'first_log_index'], unique=False)
        batch_op.create_index('ix_mirror_payments_status', ['status'], unique=False)

    op.create_table('mirror_processed_blocks',
    sa.Column('chain_id', sa.BigInteger(), nullable=False),
    sa.Column('block_hash', sa.String(length=66), nullable=False),
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('log_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('chain_id', 'block_hash', name=op.f('pk_mirror_processed_blocks'))
    )
    with op.batch_alter_table('mirror_processed_blocks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mirror_processed_blocks_block_number'), ['block_number'], unique=False)

    op.create_table('mirror_statement_lines',
    sa.Column('participant', sa.String(length=42), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('amount', chain_gateway.db.ExactInt(length=80), nullable=False),
    sa.Column('balance_after', chain_gateway.db.ExactInt(length=80), nullable=False),
    sa.Column('uetr', sa.String(length=36), nullable=True),
    sa.Column('counterparty', sa.String(length=42), nullable=True),
    sa.Column('reference', sa.String(length=66), nullable=True),
    sa.Column('tx_hash', sa.String(length=66), nullable=False),
    sa.Column('at', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('participant', 'currency', 'block_number', 'log_index', name=op.f('pk_mirror_statement_lines'))
    )
    with op.batch_alter_table('mirror_statement_lines', schema=None) as batch_op:
        batch_op.create_index('ix_mirror_statement_lines_block', ['block_number'], unique=False)

    op.create_table('mirror_system_events',
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('log_index', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('account', sa.String(length=42), nullable=True),
    sa.Column('count', sa.BigInteger(), nullable=True),
    sa.Column('gridlock', sa.Boolean(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('tx_hash', sa.String(length=66), nullable=False),
    sa.Column('at', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('block_number', 'log_index', name=op.f('pk_mirror_system_events'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('uetr', sa.String(length=36), nullable=False),
    sa.Column('debtor', sa.String(length=42), nullable=False),
    sa.Column('creditor', sa.String(length=42), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', chain_gateway.db.ExactInt(length=80), nullable=False),
    sa.Column('flags', sa.SmallInteger(), nullable=False),
    sa.Column('deadline', sa.BigInteger(), nullable=False),
    sa.Column('instruction_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('signature', sa.LargeBinary(length=65), nullable=False),
    sa.Column('state', sa.Enum('PENDING', 'SENT', 'DONE', 'FAILED', 'HELD', 'REJECTED', name='outbox_state', native_enum=False, length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('tx_hash', sa.String(length=66), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', chain_gateway.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('uetr', name=op.f('uq_outbox_uetr'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_state_id', ['state', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_state_id')

    op.drop_table('outbox')
    op.drop_table('mirror_system_events')
    with op.batch_alter_table('mirror_statement_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_mirror_statement_lines_block')

    op.drop_table('mirror_statement_lines')
    with op.batch_alter_table('mirror_processed_blocks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mirror_processed_blocks_block_number'))

    op.drop_table('mirror_processed_blocks')
    with op.batch_alter_table('mirror_payments', schema=None) as batch_op:
        batch_op.drop_index('ix_mirror_payments_status')
        batch_op.drop_index('ix_mirror_payments_position')
        batch_op.drop_index(batch_op.f('ix_mirror_payments_debtor'))
        batch_op.drop_index(batch_op.f('ix_mirror_payments_creditor'))
        batch_op.drop_index(batch_op.f('ix_mirror_payments_block_number'))

    op.drop_table('mirror_payments')
    with op.batch_alter_table('mirror_payment_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mirror_payment_events_uetr'))

    op.drop_table('mirror_payment_events')
    with op.batch_alter_table('mirror_participants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mirror_participants_registered_block'))
        batch_op.drop_index(batch_op.f('ix_mirror_participants_last_block'))

    op.drop_table('mirror_participants')
    with op.batch_alter_table('mirror_participant_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mirror_participant_events_address'))

    op.drop_table('mirror_participant_events')
    with op.batch_alter_table('mirror_limits', schema=None) as batch_op:
        batch_op.drop_index('ix_mirror_limits_participant_currency')

    op.drop_table('mirror_limits')
    with op.batch_alter_table('mirror_funding', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mirror_funding_participant'))

    op.drop_table('mirror_funding')
    op.drop_table('mirror_checkpoints')
    op.drop_table('mirror_blocks')
    with op.batch_alter_table('mirror_bilateral_limits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mirror_bilateral_limits_debtor'))

    op.drop_table('mirror_bilateral_limits')
    with op.batch_alter_table('mirror_balances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mirror_balances_block_number'))

    op.drop_table('mirror_balances')
