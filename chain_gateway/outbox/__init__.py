"""The transactional outbox: accepted payment orders are stored with their instruction
(``enqueue``), sent to the chain as ``settleBatch`` transactions by a ``Submitter`` and,
after a crash, reconciled with the chain by ``recover``.
"""
from __future__ import annotations

from chain_gateway.outbox.models import OutboxEntry, OutboxState
from chain_gateway.outbox.outbox import enqueue, get_entry
from chain_gateway.outbox.receipts import ItemOutcome, item_outcomes
from chain_gateway.outbox.submitter import RecoveryReport, Submitter, SubmitterStats, recover

__all__ = [
    "ItemOutcome", "OutboxEntry", "OutboxState", "RecoveryReport", "Submitter", "SubmitterStats", "enqueue",
    "get_entry", "item_outcomes", "recover",
]
