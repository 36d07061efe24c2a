"""The ledger invariants of CONTRACTS.md: a stateful property test that checks every step of
random operation sequences against a plain Python model, and one named test per invariant
(conservation, authorisation, single use, pause)."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from chain_gateway.signing import PaymentOrder, sign_order
from chain_gateway.transactions import TransactionFailed, TxSender, encode_call

CURRENCIES = ("USD", "EUR")
N_BANKS = 3
GAS_BIG = 3_000_000  # the machine tests the contract, not LedgerClient's gas budgets
REF = b"\0" * 32
UNKNOWN, QUEUED, SETTLED, CANCELLED, REJECTED = range(5)


def _norm(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v.lower() if isinstance(v, str) else bytes(v) if isinstance(v, bytes) else v for k, v in args.items()}


# ------------------------------------------------------------------------ model
@dataclass
class QueuedItem:
    debtor: int
    creditor: int
    currency: str
    amount: int
    held: bool = False


@dataclass
class LedgerModel:
    """What the ledger should hold: balances, supply, every UETR's status, the queue."""

    balances: dict[tuple[int, str], int] = field(default_factory=dict)
    supply: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CURRENCIES, 0))
    status: dict[bytes, int] = field(default_factory=dict)
    queue: dict[bytes, QueuedItem] = field(default_factory=dict)

    def bal(self, bank: int, currency: str) -> int:
        return self.balances.get((bank, currency), 0)

    def move(self, debtor: int, creditor: int, currency: str, amount: int) -> None:
        self.balances[(debtor, currency)] = self.bal(debtor, currency) - amount
        self.balances[(creditor, currency)] = self.bal(creditor, currency) + amount

    def process(self, uetr: bytes, debtor: int, creditor: int, currency: str, amount: int, flags: int,
                kind: str) -> tuple[str, str | None, dict[str, Any]]:
        """One order through the contract's `_process`: ("settled" | "queued" | "rejected",
        error name, error args). Applies the state change a batch item makes."""
        if self.status.get(uetr, UNKNOWN) != UNKNOWN:
            return "rejected", "DuplicateUetr", {"uetr": uetr}
        if kind == "expired":
            return "rejected", "OrderExpired", {}
        if kind == "forged":
            return "rejected", "InvalidSignature", {}
        if amount == 0 or debtor == creditor:
            self.status[uetr] = REJECTED
            return "rejected", "InvalidOrder", {"uetr": uetr}
        if self.bal(debtor, currency) >= amount:
            self.move(debtor, creditor, currency, amount)
            self.status[uetr] = SETTLED
            return "settled", None, {}
        if flags & 1:
            self.queue[uetr] = QueuedItem(debtor, creditor, currency, amount)
            self.status[uetr] = QUEUED
            return "queued", None, {}
        self.status[uetr] = REJECTED
        return "rejected", "InsufficientBalance", {"balance": self.bal(debtor, currency), "needed": amount}


# ---------------------------------------------------------------------- harness
@pytest.fixture
def ledger_env(client, chain, make_bank, own_sender, events, error_selector, latest_timestamp):
    """Three registered banks that can also send their own transactions, and a chain snapshot
    that every hypothesis example starts from."""
    banks = [make_bank(country) for country in ("US", "DE", "JP")]
    senders = [own_sender(b.account) for b in banks]
    tester = chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    env = SimpleNamespace(client=client, chain=chain, banks=banks, senders=senders, events=events,
                          error_selector=error_selector, tester=tester,
                          snapshot=tester.take_snapshot(), deadline=latest_timestamp() + 30 * 86_400,
                          expired=latest_timestamp() - 1, outsider=Account.from_key(keccak(text="outsider")))

    def view(signature: str, types: list[str], args: list[Any]) -> int:
        """A one-word view of the ledger. Like LedgerClient's views, but with `from` and `gas`
        given, which spares eth-tester two lookups per call (the check runs thousands)."""
        raw = chain.w3.eth.call({"from": client.relayer.address, "to": client.ledger, "gas": 1_000_000,
                                 "data": encode_call(signature, types, args)}, "latest")
        return int.from_bytes(raw, "big")
    env.view = view

    def reset() -> None:
        tester.revert_to_snapshot(env.snapshot)
        for sender in (client.operator, client.relayer, *senders):
            sender._nonce = None  # nonces rewound with the chain
    env.reset = reset
    return env


bank_ids = st.integers(0, N_BANKS - 1)
currencies = st.sampled_from(CURRENCIES)
offsets = st.sampled_from([1, 2, 1, 2, 0])  # creditor = debtor + offset; 0 pays itself (invalid)
flag_sets = st.sampled_from([0, 1, 2, 3])
kinds = st.sampled_from(["good", "good", "good", "forged", "expired", "duplicate"])


def make_machine(env: SimpleNamespace) -> type[RuleBasedStateMachine]:
    client = env.client

    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            env.reset()
            self.model = LedgerModel()
            self.counter = 0

        # ------------------------------------------------------------ helpers
        def _uetr(self, data: st.DataObject, kind: str) -> bytes:
            used = [u for u, s in self.model.status.items() if s != UNKNOWN]
            if kind == "duplicate" and used:
                return data.draw(st.sampled_from(used), label="reused uetr")
            self.counter += 1
            return (0x40 << 120 | self.counter).to_bytes(16, "big")

        def _order(self, uetr: bytes, debtor: int, creditor: int, currency: str, amount: int, flags: int,
                   kind: str) -> tuple[PaymentOrder, bytes]:
            banks = env.banks
            order = PaymentOrder(uetr=uetr, debtor=banks[debtor].address, creditor=banks[creditor].address,
                                 currency=currency.encode(), amount=amount, flags=flags,
                                 deadline=env.expired if kind == "expired" else env.deadline,
                                 instruction_hash=keccak(uetr))
            key = env.outsider.key if kind == "forged" else banks[debtor].account.key
            if kind == "forged" and self.counter % 2:
                key = banks[creditor].account.key  # the creditor forging the debtor's order
            return order, sign_order(key, order, env.chain.chain_id, client.ledger)

        def _expect(self, call, error: str | None, args: dict[str, Any] | None = None) -> dict[str, Any] | None:
            try:
                receipt = call()
            except TransactionFailed as exc:
                assert error is not None, f"unexpected revert: {exc.error_name} {exc.error_args}"
                assert (exc.error_name, _norm(exc.error_args)) == (error, _norm(args or {}))
                return None
            assert error is None, f"expected {error}{args}, but the call succeeded"
            return receipt

        def _full_args(self, order: PaymentOrder, error: str | None, partial: dict[str, Any]) -> dict[str, Any]:
            if error == "OrderExpired":
                return {"deadline": order.deadline}
            if error == "InsufficientBalance":
                return {"participant": order.debtor, "currency": order.currency, **partial}
            return partial

        # -------------------------------------------------------------- rules
        @rule(bank=bank_ids, currency=currencies, amount=st.integers(1, 500))
        def fund(self, bank: int, currency: str, amount: int) -> None:
            receipt = client.fund(env.banks[bank].address, currency, amount, REF)
            assert env.events(receipt, "Funded")[0]["amount"] == amount
            self.model.balances[(bank, currency)] = self.model.bal(bank, currency) + amount
            self.model.supply[currency] += amount

        @rule(bank=bank_ids, currency=currencies, amount=st.integers(0, 600))
        def defund(self, bank: int, currency: str, amount: int) -> None:
            address, balance = env.banks[bank].address, self.model.bal(bank, currency)
            if amount == 0:
                error, args = "InvalidFunding", {"participant": address, "currency": currency.encode(), "amount": 0}
            elif amount > balance:
                error, args = "InsufficientBalance", {"participant": address, "currency": currency.encode(),
                                                      "balance": balance, "needed": amount}
            else:
                error, args = None, {}
            self._expect(lambda: client.defund(address, currency, amount, REF), error, args)
            if error is None:
                self.model.balances[(bank, currency)] = balance - amount
                self.model.supply[currency] -= amount

        @rule(data=st.data(), debtor=bank_ids, offset=offsets, currency=currencies, amount=st.integers(0, 400),
              flags=flag_sets, kind=kinds)
        def pay(self, data, debtor: int, offset: int, currency: str, amount: int, flags: int, kind: str) -> None:
            creditor = (debtor + offset) % N_BANKS
            uetr = self._uetr(data, kind)
            order, sig = self._order(uetr, debtor, creditor, currency, amount, flags, kind)
            before = self.model.status.get(uetr, UNKNOWN)
            outcome, error, partial = self.model.process(uetr, debtor, creditor, currency, amount, flags, kind)
            if outcome == "rejected":  # a direct submission reverts: its UETR stays as it was
                self.model.status[uetr] = before
            self.model.status.setdefault(uetr, UNKNOWN)
            receipt = self._expect(lambda: client.submit_payment(order, sig), error,
                                   self._full_args(order, error, partial))
            if receipt is not None:
                name = "PaymentSettled" if outcome == "settled" else "PaymentQueued"
                assert [e["uetr"] for e in env.events(receipt, name)] == [uetr]

        @rule(data=st.data(), items=st.lists(st.tuples(bank_ids, offsets, currencies, st.integers(0, 400), flag_sets,
                                                       kinds), min_size=1, max_size=4))
        def batch(self, data, items) -> None:
            orders, sigs, rejected, settled, queued = [], [], [], [], []
            for debtor, offset, currency, amount, flags, kind in items:
                creditor = (debtor + offset) % N_BANKS
                uetr = self._uetr(data, kind)
                order, sig = self._order(uetr, debtor, creditor, currency, amount, flags, kind)
                orders.append(order)
                sigs.append(sig)
                outcome, error, _ = self.model.process(uetr, debtor, creditor, currency, amount, flags, kind)
                self.model.status.setdefault(uetr, UNKNOWN)
                {"settled": settled, "queued": queued, "rejected": rejected}[outcome].append(
                    {"uetr": uetr, "reason": env.error_selector(error)} if error else uetr)
            receipt = client.relayer.transact(client.ledger, client.encode_batch(orders, sigs), gas=GAS_BIG,
                                              simulate=False)
            assert env.events(receipt, "PaymentRejected") == rejected
            assert [e["uetr"] for e in env.events(receipt, "PaymentSettled")] == settled
            assert [e["uetr"] for e in env.events(receipt, "PaymentQueued")] == queued

        @precondition(lambda self: self.model.status)
        @rule(data=st.data())
        def settle_queued(self, data) -> None:
            uetrs = data.draw(st.lists(st.sampled_from(sorted(self.model.status)), max_size=5), label="uetrs")
            settled = []
            for u in uetrs:
                item = self.model.queue.get(u)
                if self.model.status[u] == QUEUED and not item.held \
                        and self.model.bal(item.debtor, item.currency) >= item.amount:
                    self.model.move(item.debtor, item.creditor, item.currency, item.amount)
                    self.model.status[u] = SETTLED
                    settled.append(u)
            data_ = encode_call("settleQueued(bytes16[])", ["bytes16[]"], [uetrs])
            receipt = client.relayer.transact(client.ledger, data_, gas=GAS_BIG)
            assert [e["uetr"] for e in env.events(receipt, "PaymentSettled")] == settled
            assert env.events(receipt, "QueueBatchSettled") == ([{"count": len(settled), "gridlock": False}]
                                                                if settled else [])

        @precondition(lambda self: self.model.status)
        @rule(data=st.data())
        def settle_gridlock(self, data) -> None:
            queued = [u for u, s in self.model.status.items() if s == QUEUED]
            pool = sorted(set(queued) | set(list(self.model.status)[:2]))
            uetrs = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4), label="uetrs")
            balances, marked, error, args = dict(self.model.balances), set(), None, {}
            for u in uetrs:  # pass 1: every item queued, not held, listed once; credit creditors
                item = self.model.queue.get(u)
                if self.model.status[u] != QUEUED or item.held or u in marked:
                    error, args = "GridlockItemInvalid", {"uetr": u}
                    break
                marked.add(u)
                key = (item.creditor, item.currency)
                balances[key] = balances.get(key, 0) + item.amount
            if error is None:
                for u in uetrs:  # pass 2: debit debtors; any shortfall is a negative net position
                    item = self.model.queue[u]
                    key = (item.debtor, item.currency)
                    if balances.get(key, 0) < item.amount:
                        error, args = "GridlockInfeasible", {"participant": env.banks[item.debtor].address,
                                                             "currency": item.currency.encode(),
                                                             "available": balances.get(key, 0),
                                                             "needed": item.amount}
                        break
                    balances[key] -= item.amount
            data_ = encode_call("settleGridlock(bytes16[])", ["bytes16[]"], [uetrs])
            receipt = self._expect(lambda: client.operator.transact(client.ledger, data_, gas=GAS_BIG), error, args)
            if receipt is not None:
                self.model.balances = balances
                for u in uetrs:
                    self.model.status[u] = SETTLED
                assert [e["uetr"] for e in env.events(receipt, "PaymentSettled")] == uetrs
                assert env.events(receipt, "QueueBatchSettled") == [{"count": len(uetrs), "gridlock": True}]

        @precondition(lambda self: self.model.status)
        @rule(data=st.data(), by=st.sampled_from(["relayer", "debtor", "creditor"]))
        def cancel(self, data, by: str) -> None:
            uetr = data.draw(st.sampled_from(sorted(self.model.status)), label="uetr")
            item = self.model.queue.get(uetr)
            if self.model.status[uetr] != QUEUED:
                sender, error, args = client.relayer, "NotQueued", {"uetr": uetr}
            elif by == "relayer":
                sender, error, args = client.relayer, None, {}
            else:
                sender = env.senders[item.debtor if by == "debtor" else item.creditor]
                error, args = (None, {}) if by == "debtor" else ("NotDebtor", {"uetr": uetr, "caller": sender.address})
            data_ = encode_call("cancelQueued(bytes16)", ["bytes16"], [uetr])
            if self._expect(lambda: sender.transact(client.ledger, data_, gas=200_000), error, args) is not None:
                self.model.status[uetr] = CANCELLED

        @precondition(lambda self: any(s == QUEUED for s in self.model.status.values()))
        @rule(data=st.data())
        def toggle_hold(self, data) -> None:
            uetr = data.draw(st.sampled_from(sorted(u for u, s in self.model.status.items() if s == QUEUED)))
            item = self.model.queue[uetr]
            item.held = not item.held
            client.set_hold(uetr, item.held)

        # ---------------------------------------------------------- invariant
        @invariant()
        def chain_matches_model(self) -> None:
            model = self.model
            for currency in CURRENCIES:
                on_chain = [env.view("balanceOf(address,bytes3)", ["address", "bytes3"], [b.address, currency.encode()])
                            for b in env.banks]
                assert on_chain == [model.bal(i, currency) for i in range(N_BANKS)], currency
                supply = env.view("totalSupply(bytes3)", ["bytes3"], [currency.encode()])
                assert supply == model.supply[currency]
                assert sum(on_chain) == supply  # conservation
            for uetr, status in model.status.items():
                assert env.view("paymentStatus(bytes16)", ["bytes16"], [uetr]) == status, uetr.hex()
            for uetr, item in model.queue.items():
                if model.status[uetr] == QUEUED:
                    assert client.queued_payment(uetr)["held"] is item.held

    return LedgerMachine


def test_ledger_matches_model_at_every_step(ledger_env):
    run_state_machine_as_test(make_machine(ledger_env), settings=settings(
        max_examples=25, stateful_step_count=15, deadline=None, derandomize=True, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
