"""Every model module of the gateway, imported so ``Base.metadata`` knows all tables:
the target of Alembic's ``env.py`` (and of ``create_all`` in throwaway test databases)."""
from __future__ import annotations

import chain_gateway.access  # noqa: F401 - API keys, participant profiles
import chain_gateway.mirror.models  # noqa: F401 - the chain mirror
import chain_gateway.outbox.models  # noqa: F401 - the submitter's outbox
import chain_gateway.audit_trail  # noqa: F401 - hash-chained record of operator actions
import chain_gateway.fx  # noqa: F401 - FX quotes and the FX outbox
import chain_gateway.payments  # noqa: F401 - accepted instructions
import chain_gateway.risk.holds  # noqa: F401 - payments held by a risk rule
from chain_gateway.db import Base

metadata = Base.metadata

__all__ = ["Base", "metadata"]
