"""Every model module of the gateway, imported so ``Base.metadata`` knows all tables:
the target of Alembic's ``env.py`` (and of ``create_all`` in throwaway test databases)."""
from __future__ import annotations

import chain_gateway.access
import chain_gateway.audit_trail
import chain_gateway.fx
import chain_gateway.mirror.models
import chain_gateway.outbox.models
import chain_gateway.payments
import chain_gateway.risk.holds  # noqa: F401 - payments held by a risk rule
from chain_gateway.db import Base

metadata = Base.metadata

__all__ = ["Base", "metadata"]
