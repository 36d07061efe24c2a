"""Pre-submission risk and compliance controls (issue 6).

- ``watchlist``: screening of agents, parties and remittance against a reloadable watch list;
- ``rules``: velocity, suspected duplicate and amount outlier over the debtor's history;
- ``engine``: ``RiskEngine(config).evaluate(...) -> Decision`` and ``risk_check`` for intake;
- ``holds``: payments held by a rule, released or rejected by the operator;
- ``limits``: on-chain operator caps and the limits a bank sets for itself;
- ``config``: every setting, with defaults (docs/risk.md documents them).

The audit trail these decisions are written to is ``chain_gateway.audit_trail``.
"""
from chain_gateway.risk.config import DuplicateRule, OutlierRule, RiskConfig, VelocityRule
from chain_gateway.risk.engine import PASS, Decision, RiskEngine
from chain_gateway.risk.holds import RiskHold, get_hold, hold, list_holds, reject, release
from chain_gateway.risk.watchlist import Match, WatchEntry, WatchList, WatchListSource

__all__ = ["PASS", "Decision", "DuplicateRule", "Match", "OutlierRule", "RiskConfig", "RiskEngine", "RiskHold",
           "VelocityRule", "WatchEntry", "WatchList", "WatchListSource", "get_hold", "hold", "list_holds", "reject",
           "release"]
