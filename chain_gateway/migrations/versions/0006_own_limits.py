"""own limits in the mirror: OwnLimitsChanged beside the operator's LimitsChanged

A bank's own limits (``setOwnLimits``, tighter than the operator's caps) were on the chain
but not in the mirror, so an auditor reading the mirror saw only the operator's side.
``mirror_limits.kind`` says whose limit a row is: ``operator`` (every existing row) or
``own``. A mirror built before this revision lacks the OwnLimitsChanged rows; rebuild it
(``settle rebuild``) to fill them in.

Revision ID: 0006_own_limits
Revises: 0005_scale_indexes
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_own_limits"
down_revision: str | Sequence[str] | None = "0005_scale_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mirror_limits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=8), server_default="operator", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("mirror_limits", schema=None) as batch_op:
        batch_op.drop_column("kind")
