"""Typed client of the deployed registry and ledger: every call the gateway makes, encoded
with eth_abi (fast path), with explicit gas, through a `TxSender` per role.

Also the deployment manifest (`deployments/<name>.json`): chain id, rpc_url, addresses,
deploy block, ABIs and compiler version — what any tool needs to find the ledger.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_utils import to_checksum_address
from web3 import Web3
from web3.types import BlockIdentifier

from chain_gateway.codec import bic_to_bytes11, country_to_bytes2, currency_to_bytes3
from chain_gateway.errors import ConfigurationError
from chain_gateway.signing import ORDER_ABI_TYPE, PaymentOrder
from chain_gateway.transactions import ErrorDecoder, TxSender, encode_call

ROLE_BANK, ROLE_FX_PROVIDER, ROLE_AUDITOR = 1, 2, 4
STATUS_NAMES = {0: "unknown", 1: "queued", 2: "settled", 3: "cancelled", 4: "rejected"}

# Gas given explicitly (estimation costs a round trip per call). Generous: unused gas is not paid.
GAS_REGISTER = 250_000
GAS_ADMIN = 150_000
GAS_SUBMIT = 250_000
GAS_BATCH_BASE = 120_000
# Worst cases per item (measured in tests/contracts/test_settlement_ledger_gas.py): a queued
# batch order ~120k (three new queue slots), a first payment to a new creditor ~101k
# (steady state between known accounts: ~44k); settleQueued to a fresh creditor ~75k; a
# gridlock payment between parties with no outflow yet today ~79k.
GAS_BATCH_ITEM = 130_000
GAS_QUEUE_ITEM = 90_000
GAS_GRIDLOCK_ITEM = 90_000
TX_GAS_CAP = 16_777_216  # EIP-7825


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live and what they are."""

    name: str
    chain_id: int
    rpc_url: str | None
    registry: str
    ledger: str
    deploy_block: int
    compiler_version: str
    source_hash: str
    abi: dict[str, list[dict[str, Any]]]
    operator: str
    relayers: list[str] = field(default_factory=list)
    participants: dict[str, str] = field(default_factory=dict)  # BIC11 -> address (demo bootstrap)
    fx_settlement: str | None = None  # FxSettlement (payment-versus-payment), granted FX_SETTLER_ROLE

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        if not path.is_file():
            raise ConfigurationError(f"no deployment manifest at {path}: deploy first (scripts/deploy)")
        return cls(**json.loads(path.read_text()))


class LedgerClient:
    """Calls on the registry and the ledger. Views need no key; writes need the role's sender."""

    def __init__(self, w3: Web3, deployment: Deployment, *, operator: TxSender | None = None,
                 relayer: TxSender | None = None) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.registry = to_checksum_address(deployment.registry)
        self.ledger = to_checksum_address(deployment.ledger)
        self.decoder = ErrorDecoder(deployment.abi["ParticipantRegistry"], deployment.abi["SettlementLedger"])
        for sender in (operator, relayer):
            if sender is not None:
                sender.decoder = self.decoder
        self.operator = operator
        self.relayer = relayer

    # ------------------------------------------------------------------ views
    def _view(self, to: str, sig: str, types: Sequence[str], args: Sequence[Any], out: Sequence[str],
              block: int | str = "latest") -> tuple[Any, ...]:
        raw = self.w3.eth.call({"to": to, "data": encode_call(sig, types, args)}, cast(BlockIdentifier, block))
        return tuple(abi_decode(list(out), bytes(raw)))

    def balance_of(self, participant: str, currency: str, block: int | str = "latest") -> int:
        return int(self._view(self.ledger, "balanceOf(address,bytes3)", ["address", "bytes3"],
                              [participant, currency_to_bytes3(currency)], ["uint256"], block)[0])

    def total_supply(self, currency: str, block: int | str = "latest") -> int:
        return int(self._view(self.ledger, "totalSupply(bytes3)", ["bytes3"], [currency_to_bytes3(currency)],
                              ["uint256"], block)[0])

    def payment_status(self, uetr: bytes, block: int | str = "latest") -> int:
        return int(self._view(self.ledger, "paymentStatus(bytes16)", ["bytes16"], [uetr], ["uint8"], block)[0])

    def queued_payment(self, uetr: bytes) -> dict[str, Any]:
        d, c, cur, amount, flags, held, seq = self._view(
            self.ledger, "queuedPayment(bytes16)", ["bytes16"], [uetr],
            ["address", "address", "bytes3", "uint256", "uint8", "bool", "uint64"])
        return {"debtor": to_checksum_address(d), "creditor": to_checksum_address(c), "currency": cur,
                "amount": amount, "flags": flags, "held": held, "seq": seq}

    def paused(self, block: int | str = "latest") -> bool:
        return bool(self._view(self.ledger, "paused()", [], [], ["bool"], block)[0])

    def hash_payment_order(self, order: PaymentOrder) -> bytes:
        return bytes(self._view(self.ledger, f"hashPaymentOrder({ORDER_ABI_TYPE})", [ORDER_ABI_TYPE],
                                [order.as_tuple()], ["bytes32"])[0])

    def participant_of(self, bic: str) -> str | None:
        addr = self._view(self.registry, "participantOf(bytes11)", ["bytes11"], [bic_to_bytes11(bic)], ["address"])[0]
        return None if int(addr, 16) == 0 else to_checksum_address(addr)

    def bic_of(self, participant: str) -> bytes:
        return bytes(self._view(self.registry, "bicOf(address)", ["address"], [participant], ["bytes11"])[0])

    def is_active(self, participant: str) -> bool:
        return bool(self._view(self.registry, "isActive(address)", ["address"], [participant], ["bool"])[0])

    def roles_of(self, participant: str) -> int:
        return int(self._view(self.registry, "rolesOf(address)", ["address"], [participant], ["uint8"])[0])

    def participant_count(self) -> int:
        return int(self._view(self.registry, "participantCount()", [], [], ["uint256"])[0])

    def participant_at(self, index: int) -> str:
        return to_checksum_address(
            self._view(self.registry, "participantAt(uint256)", ["uint256"], [index], ["address"])[0])

    def has_role(self, contract: str, role: bytes, account: str) -> bool:
        return bool(self._view(contract, "hasRole(bytes32,address)", ["bytes32", "address"], [role, account],
                               ["bool"])[0])

    # ------------------------------------------------------------ operator writes
    def _op(self) -> TxSender:
        if self.operator is None:
            raise ConfigurationError("this client has no operator key")
        return self.operator

    def _rel(self) -> TxSender:
        if self.relayer is None:
            raise ConfigurationError("this client has no relayer key")
        return self.relayer

    def register(self, participant: str, bic: str, country: str, roles: int) -> dict[str, Any]:
        data = encode_call("register(address,bytes11,bytes2,uint8)", ["address", "bytes11", "bytes2", "uint8"],
                           [participant, bic_to_bytes11(bic), country_to_bytes2(country), roles])
        return self._op().transact(self.registry, data, gas=GAS_REGISTER)

    def suspend(self, participant: str) -> dict[str, Any]:
        return self._op().transact(self.registry, encode_call("suspend(address)", ["address"], [participant]),
                                   gas=GAS_ADMIN)

    def reinstate(self, participant: str) -> dict[str, Any]:
        return self._op().transact(self.registry, encode_call("reinstate(address)", ["address"], [participant]),
                                   gas=GAS_ADMIN)

    def fund(self, participant: str, currency: str, amount: int, ref: bytes) -> dict[str, Any]:
        data = encode_call("fund(address,bytes3,uint256,bytes32)", ["address", "bytes3", "uint256", "bytes32"],
                           [participant, currency_to_bytes3(currency), amount, ref])
        return self._op().transact(self.ledger, data, gas=GAS_ADMIN)

    def defund(self, participant: str, currency: str, amount: int, ref: bytes) -> dict[str, Any]:
        data = encode_call("defund(address,bytes3,uint256,bytes32)", ["address", "bytes3", "uint256", "bytes32"],
                           [participant, currency_to_bytes3(currency), amount, ref])
        return self._op().transact(self.ledger, data, gas=GAS_ADMIN)

    def set_limits(self, participant: str, currency: str, max_per_payment: int, max_daily: int) -> dict[str, Any]:
        data = encode_call("setLimits(address,bytes3,uint128,uint128)", ["address", "bytes3", "uint128", "uint128"],
                           [participant, currency_to_bytes3(currency), max_per_payment, max_daily])
        return self._op().transact(self.ledger, data, gas=GAS_ADMIN)

    def set_bilateral_limit(self, debtor: str, creditor: str, currency: str, max_daily: int) -> dict[str, Any]:
        data = encode_call("setBilateralLimit(address,address,bytes3,uint256)",
                           ["address", "address", "bytes3", "uint256"],
                           [debtor, creditor, currency_to_bytes3(currency), max_daily])
        return self._op().transact(self.ledger, data, gas=GAS_ADMIN)

    def pause(self) -> dict[str, Any]:
        return self._op().transact(self.ledger, encode_call("pause()", [], []), gas=GAS_ADMIN)

    def unpause(self) -> dict[str, Any]:
        return self._op().transact(self.ledger, encode_call("unpause()", [], []), gas=GAS_ADMIN)

    def settle_gridlock(self, uetrs: Sequence[bytes]) -> dict[str, Any]:
        data = encode_call("settleGridlock(bytes16[])", ["bytes16[]"], [list(uetrs)])
        gas = min(TX_GAS_CAP, 100_000 + GAS_GRIDLOCK_ITEM * len(uetrs))
        return self._op().transact(self.ledger, data, gas=gas)

    # ------------------------------------------------------------ relayer writes
    @staticmethod
    def encode_submit(order: PaymentOrder, signature: bytes) -> bytes:
        return encode_call(f"submitPayment({ORDER_ABI_TYPE},bytes)", [ORDER_ABI_TYPE, "bytes"],
                           [order.as_tuple(), signature])

    @staticmethod
    def encode_batch(orders: Sequence[PaymentOrder], signatures: Sequence[bytes]) -> bytes:
        return encode_call(f"settleBatch({ORDER_ABI_TYPE}[],bytes[])", [f"{ORDER_ABI_TYPE}[]", "bytes[]"],
                           [[o.as_tuple() for o in orders], list(signatures)])

    @staticmethod
    def batch_gas(n: int) -> int:
        return min(TX_GAS_CAP, GAS_BATCH_BASE + GAS_BATCH_ITEM * n)

    def submit_payment(self, order: PaymentOrder, signature: bytes) -> dict[str, Any]:
        return self._rel().transact(self.ledger, self.encode_submit(order, signature), gas=GAS_SUBMIT)

    def settle_batch(self, orders: Sequence[PaymentOrder], signatures: Sequence[bytes]) -> dict[str, Any]:
        # No simulation: a batch never reverts for an item, and items are judged on-chain.
        return self._rel().transact(self.ledger, self.encode_batch(orders, signatures),
                                    gas=self.batch_gas(len(orders)), simulate=False)

    def settle_queued(self, uetrs: Sequence[bytes]) -> dict[str, Any]:
        data = encode_call("settleQueued(bytes16[])", ["bytes16[]"], [list(uetrs)])
        return self._rel().transact(self.ledger, data, gas=min(TX_GAS_CAP, 80_000 + GAS_QUEUE_ITEM * len(uetrs)))

    def cancel_queued(self, uetr: bytes) -> dict[str, Any]:
        return self._rel().transact(self.ledger, encode_call("cancelQueued(bytes16)", ["bytes16"], [uetr]),
                                    gas=GAS_ADMIN)

    def set_hold(self, uetr: bytes, held: bool) -> dict[str, Any]:
        return self._rel().transact(self.ledger, encode_call("setHold(bytes16,bool)", ["bytes16", "bool"],
                                                             [uetr, held]), gas=GAS_ADMIN)

    def set_priority(self, uetr: bytes, urgent: bool) -> dict[str, Any]:
        return self._rel().transact(self.ledger, encode_call("setPriority(bytes16,bool)", ["bytes16", "bool"],
                                                             [uetr, urgent]), gas=GAS_ADMIN)

    # ------------------------------------------------ participant-set limits (risk, issue 6)
    # Operator caps stay in `set_limits` / `set_bilateral_limit`; a participant may tighten them.
    # The limit the ledger enforces is, per kind, the stricter non-zero of cap and own limit.
    def limits_of(self, participant: str, currency: str) -> tuple[int, int]:
        """The operator caps (max per payment, max daily outflow) in minor units; 0 = none."""
        per, daily = self._view(self.ledger, "limitsOf(address,bytes3)", ["address", "bytes3"],
                                [participant, currency_to_bytes3(currency)], ["(uint128,uint128)"])[0]
        return int(per), int(daily)

    def own_limits_of(self, participant: str, currency: str) -> tuple[int, int]:
        """The limits the participant set for itself; 0 = none."""
        per, daily = self._view(self.ledger, "ownLimitsOf(address,bytes3)", ["address", "bytes3"],
                                [participant, currency_to_bytes3(currency)], ["(uint128,uint128)"])[0]
        return int(per), int(daily)

    def effective_limits(self, participant: str, currency: str) -> tuple[int, int]:
        """The limits the ledger enforces on the participant's payments; 0 = unlimited."""
        per, daily = self._view(self.ledger, "effectiveLimits(address,bytes3)", ["address", "bytes3"],
                                [participant, currency_to_bytes3(currency)], ["(uint128,uint128)"])[0]
        return int(per), int(daily)

    @staticmethod
    def encode_set_own_limits(currency: str, max_per_payment: int, max_daily: int) -> bytes:
        """Call data of `setOwnLimits`, for a participant sending it from its own key."""
        return encode_call("setOwnLimits(bytes3,uint128,uint128)", ["bytes3", "uint128", "uint128"],
                           [currency_to_bytes3(currency), max_per_payment, max_daily])

    def set_own_limits_for(self, participant: str, currency: str, max_per_payment: int,
                           max_daily: int) -> dict[str, Any]:
        """Relay a participant's own limits (the gateway acting for an authenticated bank)."""
        data = encode_call("setOwnLimitsFor(address,bytes3,uint128,uint128)",
                           ["address", "bytes3", "uint128", "uint128"],
                           [participant, currency_to_bytes3(currency), max_per_payment, max_daily])
        return self._rel().transact(self.ledger, data, gas=GAS_ADMIN)

    # ------------------------------------------- FX PvP and gridlock batches (issue 5, chain_gateway.fx/queue)
    # Gas per item, measured on anvil (scripts/bench_gridlock.py prints the figures): reserve ~10k,
    # close ~15k (a PaymentSettled each), settleGridlock ~16.8k (16.4k with an access list); budgets
    # leave room for first-of-day outflow counters and fresh slots. Unused gas is not paid.
    GRID_RESERVE_ITEM = 14_000
    GRID_CLOSE_ITEM = 19_000
    GRID_ACCOUNT = 75_000  # a position new to a batch: two fresh slots and a list entry

    def gridlock_batch(self, block: int | str = "latest") -> tuple[bytes, int, int, int]:
        """The open gridlock batch: (id, state 0 none / 1 reserving / 2 committed / 3 released, reserved, closed)."""
        batch_id, state, reserved, closed = self._view(self.ledger, "gridlockBatch()", [], [],
                                                       ["bytes32", "uint8", "uint256", "uint256"], block)
        return bytes(batch_id), int(state), int(reserved), int(closed)

    def settle_gridlock_exact(self, uetrs: Sequence[bytes], gas: int,
                              access_list: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """settleGridlock with a caller-computed gas limit (the queue service estimates it), and
        an EIP-2930 access list when given: it pre-warms each payment's four storage slots at
        1,900 gas instead of 2,100, ~400 gas a payment, what lets 1,000 fit one transaction."""
        data = encode_call("settleGridlock(bytes16[])", ["bytes16[]"], [list(uetrs)])
        sender = self._op()
        if access_list is None:
            return sender.transact(self.ledger, data, gas=min(TX_GAS_CAP, gas))
        sender.call(self.ledger, data, block="pending")  # surface a custom error before sending
        return sender.wait(_send_with_access_list(sender, self.ledger, data, min(TX_GAS_CAP, gas), access_list))

    def access_list(self, data: bytes, *, operator: bool = True) -> tuple[list[dict[str, Any]], int] | None:
        """eth_createAccessList of a ledger call: (access list, gas with it), or None where the node
        has no such method (eth-tester) or it fails."""
        sender = self._op() if operator else self._rel()
        try:
            result = self.w3.eth.create_access_list({"from": sender.address, "to": self.ledger, "data": data},
                                                    "latest")
        except Exception:  # noqa: BLE001 - an optional optimisation: any failure means "no list"
            return None
        if result.get("error"):
            return None
        entries = [{"address": e["address"], "storageKeys": ["0x" + bytes(k).hex() if not isinstance(k, str) else k
                                                             for k in e["storageKeys"]]}
                   for e in result["accessList"]]
        return entries, int(result["gasUsed"])

    @staticmethod
    def encode_reserve_gridlock(batch_id: bytes, uetrs: Sequence[bytes]) -> bytes:
        return encode_call("reserveGridlock(bytes32,bytes16[])", ["bytes32", "bytes16[]"], [batch_id, list(uetrs)])

    @staticmethod
    def encode_close_gridlock(batch_id: bytes, uetrs: Sequence[bytes]) -> bytes:
        return encode_call("closeGridlock(bytes32,bytes16[])", ["bytes32", "bytes16[]"], [batch_id, list(uetrs)])

    def reserve_gridlock(self, batch_id: bytes, uetrs: Sequence[bytes], gas: int | None = None) -> dict[str, Any]:
        """Reserve queued payments for batch `batch_id` (gas: the caller's estimate, else a budget
        for the worst case: every account new to the batch)."""
        n = len(uetrs)
        budget = 150_000 + self.GRID_RESERVE_ITEM * n + self.GRID_ACCOUNT * min(2 * n, 512)
        return self._op().transact(self.ledger, self.encode_reserve_gridlock(batch_id, uetrs),
                                   gas=min(TX_GAS_CAP, gas or budget))

    def commit_gridlock(self, batch_id: bytes, accounts: int) -> dict[str, Any]:
        data = encode_call("commitGridlock(bytes32)", ["bytes32"], [batch_id])
        return self._op().transact(self.ledger, data, gas=min(TX_GAS_CAP, 200_000 + self.GRID_ACCOUNT * accounts))

    def release_gridlock(self, batch_id: bytes) -> dict[str, Any]:
        data = encode_call("releaseGridlock(bytes32)", ["bytes32"], [batch_id])
        return self._op().transact(self.ledger, data, gas=min(TX_GAS_CAP, 2_000_000))

    def close_gridlock(self, batch_id: bytes, uetrs: Sequence[bytes], gas: int | None = None) -> dict[str, Any]:
        budget = 120_000 + self.GRID_CLOSE_ITEM * len(uetrs)
        return self._op().transact(self.ledger, self.encode_close_gridlock(batch_id, uetrs),
                                   gas=min(TX_GAS_CAP, gas or budget))

    def estimate(self, data: bytes, *, operator: bool = True, block: int | str = "latest") -> int:
        """eth_estimateGas of a ledger call from the operator (or the relayer); raises on revert."""
        sender = self._op() if operator else self._rel()
        sender.call(self.ledger, data, block=block)  # surfaces the custom error, decoded
        at: Any = block
        return int(self.w3.eth.estimate_gas({"from": sender.address, "to": self.ledger, "data": data}, at))

    def statuses(self, uetrs: Sequence[bytes], block: Any = "latest", chunk: int = 500) -> list[int]:
        """paymentStatus of many UETRs at one block: one JSON-RPC batch per `chunk` where the provider
        batches (anvil, Besu), else one call each (eth-tester)."""
        out: list[int] = []
        for i in range(0, len(uetrs), chunk):
            part = list(uetrs[i:i + chunk])
            try:
                batch = self.w3.batch_requests()
            except Exception:  # noqa: BLE001 - web3 raises Web3TypeError for providers without batches
                out += [self.payment_status(u, block) for u in part]
                continue
            with batch:
                for u in part:
                    batch.add(self.w3.eth.call({"to": self.ledger, "data": encode_call(
                        "paymentStatus(bytes16)", ["bytes16"], [u])}, block))
                results: list[Any] = list(batch.execute())
                out += [int.from_bytes(bytes(raw)[:32], "big") for raw in results]
        return out


def _send_with_access_list(sender: TxSender, to: str, data: bytes, gas: int, access_list: list[dict[str, Any]]) -> str:
    """TxSender.send with an EIP-2930 access list, under the sender's nonce lock.

    Lead: fold this into ``TxSender.send(..., access_list=None)``; it uses TxSender's internals
    (``_lock``, ``_nonce``, ``_fees``, ``_chain_id``) exactly as ``send`` does."""
    fees = sender._fees()
    with sender._lock:
        if sender._nonce is None:
            sender._nonce = int(sender.w3.eth.get_transaction_count(sender.address, "pending"))
        tx: dict[str, Any] = {"nonce": sender._nonce, "gas": gas, "value": 0, "data": data, "to": to,
                              "chainId": sender._chain_id, "accessList": access_list, **fees}
        signed = sender.account.sign_transaction(tx)
        try:
            tx_hash = sender.w3.eth.send_raw_transaction(signed.raw_transaction)
        except Exception as exc:
            sender._nonce = None
            raise sender._failure(exc) from exc
        sender._nonce += 1
    return "0x" + bytes(tx_hash).hex()
