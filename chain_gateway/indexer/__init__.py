"""Chain events -> SQL mirror (see ``core`` for the cycle, ``events`` for decoding and
``source`` for reading the chain).

    indexer = Indexer(client, session_factory, confirmation_depth=0, hooks=[on_update])
    indexer.sync_once()                     # -> SyncReport(from_block, to_block, events, seconds, ...)
    indexer.run_forever(stop_event, poll_interval=0.5)
"""
from chain_gateway.indexer.core import Hook, Indexer, MirrorUpdate, RangeAlreadyApplied, SyncReport
from chain_gateway.indexer.events import DecodedEvent, EventDecoder, RawLog
from chain_gateway.indexer.source import BlockHeader, ChainSource, JsonRpcSource, Web3Source, make_source

__all__ = [
    "BlockHeader", "ChainSource", "DecodedEvent", "EventDecoder", "Hook", "Indexer", "JsonRpcSource",
    "MirrorUpdate", "RangeAlreadyApplied", "RawLog", "SyncReport", "Web3Source", "make_source",
]
