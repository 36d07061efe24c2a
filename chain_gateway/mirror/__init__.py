"""The SQL mirror of the chain: typed models (``models``), the migration entry point
(``schema.upgrade_database``), write-side folding of chain events (``writer``) and the
read-side repository functions the API uses (``repository``).

The chain is the book of record. Every table here is chain-derived: it can be
wiped and rebuilt from the deployment block (``Indexer.rebuild``) and is checked against the
chain by ``chain_gateway.reconcile``.
"""
