"""Reconcile the mirror against the chain at one block.

At the block (the mirror's checkpoint unless told otherwise) it compares:

* every balance the mirror holds or the chain's events imply (``balanceOf`` at that block),
  and each currency's sum of balances with ``totalSupply``;
* every payment's status with ``paymentStatus`` at that block;
* the set of UETRs in the chain's payment events up to the block with the mirror's, so a
  payment the mirror lacks (``missing_payment``) or invents (``extra_payment``) shows;
* at the checkpoint, each balance row with the running balance of its last statement line.

Between ``commitGridlock`` and the last ``closeGridlock`` the chain's balances are ahead of
its events by the committed batch's nets: those payments are counted as in transit
(``checked["in_transit"]``) and their nets added to the mirror's side, so the window is
exact rather than a burst of false differences.

View calls go out as JSON-RPC batches on an HTTP node. An empty ``differences`` list means
the mirror is consistent with the chain.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import to_checksum_address
from sqlalchemy import select
from sqlalchemy.orm import Session

from chain_gateway.codec import currency_to_bytes3
from chain_gateway.errors import InvalidMessage, Unavailable
from chain_gateway.indexer.events import EventDecoder
from chain_gateway.indexer.source import ChainSource, make_source
from chain_gateway.ledger import LedgerClient
from chain_gateway.mirror import writer
from chain_gateway.mirror.models import Balance, Checkpoint, Payment, PaymentEvent, StatementLine
from chain_gateway.transactions import encode_call

_PAYMENT_EVENTS = ("PaymentSettled", "PaymentQueued", "PaymentCancelled", "PaymentRejected")
_MONEY_EVENTS = ("Funded", "Defunded", "PaymentSettled")
# chain status code -> the mirror statuses that agree with it
_AGREES = {0: ("RJCT",), 1: ("PDNG",), 2: ("ACSC", "ACSP"), 3: ("CANC",), 4: ("RJCT",), 5: ("PDNG",)}
_CHAIN_NAMES = {0: "unknown", 1: "PDNG", 2: "ACSC", 3: "CANC", 4: "RJCT", 5: "PDNG (reserved)"}
# The mirror's raw code that agrees with a chain code, where they differ: a payment reserved
# for the open gridlock batch (5) is still queued for the mirror (no event names the reserved
# UETRs yet).
_MIRROR_CODE = {5: 1}
_STATUS_RESERVED = 5
_GRID_COMMITTED = 2  # gridlockBatch() state: nets applied, payments being closed


@dataclass(frozen=True)
class Difference:
    kind: str  # balance, total_supply, statement, payment_status, missing_payment, extra_payment
    key: str
    mirror: str | None
    chain: str | None


@dataclass(frozen=True)
class Reconciliation:
    block_number: int
    checked: dict[str, int]
    differences: list[Difference] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        """The API's response shape."""
        return {"block_number": self.block_number, "checked": dict(self.checked),
                "differences": [asdict(d) for d in self.differences]}


def _uint(raw: bytes) -> int:
    if len(raw) < 32:
        raise Unavailable("the ledger returned no data at that block (not deployed yet?)")
    return int.from_bytes(raw[:32], "big")


def _chain_facts(source: ChainSource, decoder: EventDecoder, client: LedgerClient, from_block: int, to_block: int,
                 step: int) -> tuple[set[str], set[tuple[str, str]]]:
    """UETRs and (participant, currency) pairs in the ledger's events up to `to_block`."""
    names = [n for n in (*_PAYMENT_EVENTS, "Funded", "Defunded", "FxSettled") if n in decoder.by_name]
    topics = [[decoder.topic0(n) for n in names]]
    uetrs: set[str] = set()
    keys: set[tuple[str, str]] = set()
    for start in range(from_block, to_block + 1, step):
        for raw in source.logs(start, min(to_block, start + step - 1), [client.ledger], topics):
            ev = decoder.decode(raw)
            if ev is None:
                continue
            a = ev.args
            if ev.name in _PAYMENT_EVENTS:
                uetrs.add(writer.uetr_text(a["uetr"]))
            if ev.name == "FxSettled":
                for currency_arg in ("debitCurrency", "creditCurrency"):
                    keys.add((a["provider"], bytes(a[currency_arg]).rstrip(b"\0").decode("ascii", errors="replace")))
            if ev.name in _MONEY_EVENTS:
                currency = bytes(a["currency"]).rstrip(b"\0").decode("ascii", errors="replace")
                for party in (a.get("participant"), a.get("debtor"), a.get("creditor")):
                    if party:
                        keys.add((party, currency))
    return uetrs, keys


def _mirror_at(session: Session, block: int, at_checkpoint: bool) -> tuple[dict[tuple[str, str], int],
                                                                           dict[str, dict[str, Any]]]:
    """The mirror's balances and payments as of `block`: the state tables at the checkpoint,
    else folded from the event logs up to `block`."""
    if at_checkpoint:
        balances = {(b.participant, b.currency): b.amount for b in session.execute(select(Balance)).scalars()}
        payments = {p.uetr: {"status": p.status, "chain_status": p.chain_status}
                    for p in session.execute(select(Payment)).scalars()}
        return balances, payments
    balances = {}
    for ln in session.execute(select(StatementLine).where(StatementLine.block_number <= block)
                              .order_by(StatementLine.block_number, StatementLine.log_index)).scalars():
        balances[(ln.participant, ln.currency)] = ln.balance_after
    folded: dict[str, dict[str, Any] | None] = {}
    table = PaymentEvent.__table__
    for h in session.execute(select(table).where(table.c.block_number <= block)
                             .order_by(table.c.block_number, table.c.log_index)).mappings():
        folded[h["uetr"]] = writer.fold_payment(folded.get(h["uetr"]), dict(h))
    payments = {u: {"status": r["status"], "chain_status": r["chain_status"]} for u, r in folded.items() if r}
    return balances, payments


def reconcile(session: Session, client: LedgerClient, block: int | None = None, *,
              source: ChainSource | None = None, log_range: int = 10_000) -> Reconciliation:
    """Compare the mirror with the chain at `block` (default: the mirror's checkpoint)."""
    cp = session.execute(select(Checkpoint).where(Checkpoint.ledger == client.ledger)).scalar_one_or_none()
    if cp is None:
        raise Unavailable("the mirror has not indexed this deployment yet")
    if block is None:
        block = cp.block_number
    if block > cp.block_number or block < cp.deploy_block:
        raise InvalidMessage(f"block {block} is outside the mirror ({cp.deploy_block}..{cp.block_number})",
                             block_number=block)
    source = source or make_source(client.w3)
    decoder = EventDecoder(client.deployment.abi["SettlementLedger"])
    chain_uetrs, chain_keys = _chain_facts(source, decoder, client, cp.deploy_block, block, log_range)
    mirror_balances, mirror_payments = _mirror_at(session, block, block == cp.block_number)
    differences: list[Difference] = []

    # payments: every UETR either side knows, with its status on the chain
    mirror_uetrs = set(mirror_payments)
    common = sorted(mirror_uetrs & chain_uetrs)
    codes = [_uint(raw) for raw in source.calls(
        [(client.ledger, encode_call("paymentStatus(bytes16)", ["bytes16"], [_uetr_bytes(u)])) for u in common],
        block)] if common else []
    reserved = [u for u, code in zip(common, codes, strict=True) if code == _STATUS_RESERVED]
    in_transit = _in_transit(source, client, block, reserved)

    # balances and supply (a committed gridlock's payments not yet closed count as in transit)
    keys = sorted(set(mirror_balances) | chain_keys | set(in_transit))
    currencies = sorted({c for _, c in keys})
    calls = [(client.ledger, encode_call("balanceOf(address,bytes3)", ["address", "bytes3"],
                                         [p, currency_to_bytes3(c)])) for p, c in keys]
    calls += [(client.ledger, encode_call("totalSupply(bytes3)", ["bytes3"], [currency_to_bytes3(c)]))
              for c in currencies]
    results = [_uint(r) for r in source.calls(calls, block)] if calls else []
    chain_balances = dict(zip(keys, results[:len(keys)], strict=True))
    for (participant, currency), chain_amount in chain_balances.items():
        mirror_amount = mirror_balances.get((participant, currency))
        moving = in_transit.get((participant, currency), 0)
        if mirror_amount is None and chain_amount == moving == 0:
            continue  # never funded or emptied before any mirror row: both say nothing
        if (mirror_amount or 0) + moving != chain_amount:
            shown = None if mirror_amount is None else str(mirror_amount)
            if moving:
                shown = f"{mirror_amount or 0} {'+' if moving > 0 else '-'} {abs(moving)} in transit"
            differences.append(Difference("balance", f"{participant}/{currency}", shown, str(chain_amount)))
    for currency, supply in zip(currencies, results[len(keys):], strict=True):
        mirror_supply = sum(a for (_, c), a in mirror_balances.items() if c == currency)
        if mirror_supply != supply:
            differences.append(Difference("total_supply", currency, str(mirror_supply), str(supply)))
    if block == cp.block_number:
        differences += _statement_differences(session, mirror_balances)

    for uetr in sorted(chain_uetrs - mirror_uetrs):
        differences.append(Difference("missing_payment", uetr, None, "present"))
    for uetr in sorted(mirror_uetrs - chain_uetrs):
        differences.append(Difference("extra_payment", uetr, mirror_payments[uetr]["status"], None))
    for uetr, code in zip(common, codes, strict=True):
        mine = mirror_payments[uetr]
        if mine["chain_status"] != _MIRROR_CODE.get(code, code) or mine["status"] not in _AGREES.get(code, ()):
            differences.append(Difference("payment_status", uetr, f"{mine['status']} ({mine['chain_status']})",
                                          f"{_CHAIN_NAMES.get(code, str(code))} ({code})"))
    return Reconciliation(block, {"balances": len(keys), "payments": len(mirror_uetrs | chain_uetrs),
                                  "currencies": len(currencies), "in_transit": len(reserved) if in_transit else 0}, differences)


def _uetr_bytes(uetr: str) -> bytes:
    return bytes.fromhex(uetr.replace("-", ""))


def _in_transit(source: ChainSource, client: LedgerClient, block: int, reserved: list[str]) -> dict[tuple[str, str], int]:
    """Net balance movement, per (participant, currency), of the payments a committed gridlock
    batch has already settled on the chain but not yet closed.

    ``commitGridlock`` applies every net position at once, while each payment's PaymentSettled
    event only comes with ``closeGridlock`` a few transactions later. Between the two the chain's
    balances are ahead of the events (and so of the mirror) by exactly these nets: items in
    transit, as a bank reconciliation calls them. A batch still reserving (or released) has
    moved nothing, so it has none."""
    if not reserved or client.gridlock_batch(block)[1] != _GRID_COMMITTED:
        return {}
    nets: dict[tuple[str, str], int] = {}
    rows = source.calls([(client.ledger, encode_call("queuedPayment(bytes16)", ["bytes16"], [_uetr_bytes(u)]))
                         for u in reserved], block)
    for raw in rows:
        debtor, creditor, currency, amount, *_ = abi_decode(
            ["address", "address", "bytes3", "uint256", "uint8", "bool", "uint64"], bytes(raw))
        code = bytes(currency).rstrip(b"\0").decode("ascii", errors="replace")
        for party, delta in ((to_checksum_address(debtor), -int(amount)), (to_checksum_address(creditor), int(amount))):
            nets[(party, code)] = nets.get((party, code), 0) + delta
    return nets


def _statement_differences(session: Session, balances: dict[tuple[str, str], int]) -> Iterable[Difference]:
    """Each balance row against the running balance of its last statement line."""
    last: dict[tuple[str, str], int] = {}
    for ln in session.execute(select(StatementLine.participant, StatementLine.currency, StatementLine.balance_after)
                              .order_by(StatementLine.block_number, StatementLine.log_index)):
        last[(ln.participant, ln.currency)] = int(ln.balance_after)
    for key in sorted(set(last) | set(balances)):
        if last.get(key) != balances.get(key):
            yield Difference("statement", f"{key[0]}/{key[1]}", None if key not in balances else str(balances[key]),
                             None if key not in last else str(last[key]))
