"""Chain-side benchmarks: the raw ceiling and gas, on a fresh anvil with no gateway.

    .venv/bin/python -m scripts.bench_chain [--payments 20000] [--quick]

A ``Rig`` is a fresh anvil (no state file) with the contracts deployed, banks registered
and funded. The banks sign their orders on their side (coincurve straight on the EIP-712
digest, as a bank's HSM would); the relayer's transactions go out as plain JSON-RPC batch
arrays of ``eth_sendRawTransaction`` (web3's ``batch_requests`` refuses them, and its
convenience calls cost ~4 ms each). ``make bench`` (scripts/bench.py) calls the functions
here; run alone it prints the raw ceiling and the gas table.
"""
from __future__ import annotations

import argparse
import itertools
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import coincurve
import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from chain_gateway.chain import AnvilProcess, anvil_binary, dev_accounts, make_web3
from chain_gateway.config import PROJECT_ROOT
from chain_gateway.deploy import deploy
from chain_gateway.ledger import GAS_ADMIN, GAS_REGISTER, GAS_SUBMIT, ROLE_BANK, Deployment, LedgerClient
from chain_gateway.signing import PAYMENT_ORDER_TYPEHASH, PaymentOrder, domain_separator
from chain_gateway.transactions import TxSender, encode_call

USD = b"USD"
DAY = 24 * 3600


# ----------------------------------------------------------------------------- JSON-RPC
class RpcError(RuntimeError):
    """Raised when the node answers a JSON-RPC call with an error."""


class Rpc:
    """Plain JSON-RPC over one keep-alive HTTP connection: single calls and batch arrays."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        self.url = url
        self.timeout = timeout
        self._http = requests.Session()
        self._ids = itertools.count(1)

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        reply = self._http.post(self.url, json={"jsonrpc": "2.0", "id": next(self._ids), "method": method,
                                                "params": list(params)}, timeout=self.timeout).json()
        if "error" in reply:
            raise RpcError(f"{method}: {reply['error']}")
        return reply["result"]

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *, check: bool = True) -> list[Any]:
        """One HTTP request carrying a JSON array of calls; results in call order."""
        if not calls:
            return []
        first = next(self._ids)
        body = [{"jsonrpc": "2.0", "id": first + i, "method": m, "params": list(p)} for i, (m, p) in enumerate(calls)]
        for _ in range(len(calls) - 1):
            next(self._ids)
        replies = self._http.post(self.url, json=body, timeout=self.timeout).json()
        by_id = {r["id"]: r for r in replies}
        out = []
        for i in range(len(calls)):
            r = by_id[first + i]
            if "error" in r:
                if check:
                    raise RpcError(f"{calls[i][0]}: {r['error']}")
                out.append(r["error"])
            else:
                out.append(r["result"])
        return out

    def send_raw(self, raws: Sequence[bytes], per_request: int = 100) -> list[str]:
        hashes: list[str] = []
        for i in range(0, len(raws), per_request):
            hashes += self.batch([("eth_sendRawTransaction", ["0x" + r.hex()]) for r in raws[i:i + per_request]])
        return hashes

    def wait_receipt(self, tx_hash: str, timeout: float = 300.0, pause: float = 0.002) -> dict[str, Any]:
        """Poll for a receipt. anvil's automine seals what arrived together into one block up to
        the block gas limit and leaves the rest pending until the next transaction comes; after
        a second without progress, ask it to mine (evm_mine) instead of waiting forever."""
        deadline = time.monotonic() + timeout
        poke_at = time.monotonic() + 1.0
        while True:
            receipt = self.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                return receipt
            now = time.monotonic()
            if now > deadline:
                raise RpcError(f"no receipt for {tx_hash} within {timeout} s")
            if now > poke_at:
                self.call("evm_mine")
                poke_at = now + 1.0
            time.sleep(pause)
            pause = min(0.05, pause * 1.5)

    def receipts(self, hashes: Sequence[str], per_request: int = 200) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(0, len(hashes), per_request):
            out += self.batch([("eth_getTransactionReceipt", [h]) for h in hashes[i:i + per_request]])
        return out

    def snapshot(self) -> str:
        return str(self.call("evm_snapshot"))

    def revert(self, snap: str) -> None:
        if not self.call("evm_revert", [snap]):
            raise RpcError(f"evm_revert {snap} refused")


# ------------------------------------------------------------------------- bank signing
class BankSigner:
    """What a bank does on its side: EIP-712 digest of its order, secp256k1 signature.

    Identical output to ``chain_gateway.signing.sign_order`` (deterministic RFC 6979, low-s),
    computed with coincurve directly so that preparing 100k orders takes seconds."""

    def __init__(self, chain_id: int, ledger: str) -> None:
        self.domain = domain_separator(chain_id, to_checksum_address(ledger))
        self._keys: dict[bytes, coincurve.PrivateKey] = {}

    def digest(self, o: PaymentOrder) -> bytes:
        struct = (PAYMENT_ORDER_TYPEHASH + o.uetr.ljust(32, b"\0") + bytes.fromhex(o.debtor[2:]).rjust(32, b"\0")
                  + bytes.fromhex(o.creditor[2:]).rjust(32, b"\0") + o.currency.ljust(32, b"\0")
                  + o.amount.to_bytes(32, "big") + o.flags.to_bytes(32, "big") + o.deadline.to_bytes(32, "big")
                  + o.instruction_hash)
        return keccak(b"\x19\x01" + self.domain + keccak(struct))

    def sign(self, key: bytes, o: PaymentOrder) -> bytes:
        pk = self._keys.get(key)
        if pk is None:
            pk = self._keys[key] = coincurve.PrivateKey(key)
        sig = pk.sign_recoverable(self.digest(o), hasher=None)
        return sig[:64] + bytes([sig[64] + 27])


# --------------------------------------------------------------------------------- rig
@dataclass
class Rig:
    """A fresh anvil with the contracts, registered and funded banks, and a raw RPC client."""

    anvil: AnvilProcess
    deployment: Deployment
    client: LedgerClient
    rpc: Rpc
    banks: list[LocalAccount]
    bics: list[str]
    relayers: list[LocalAccount]
    signer: BankSigner
    nonces: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.anvil.url

    @property
    def chain_id(self) -> int:
        return self.deployment.chain_id

    @property
    def ledger(self) -> str:
        return self.deployment.ledger

    def close(self) -> None:
        self.anvil.stop()

    # -- raw transactions ----------------------------------------------------------
    def send_mined(self, raws: Sequence[bytes], per_block: int) -> list[str]:
        """Send `raws` in JSON-RPC arrays of `per_block` transactions, each array sealed at once
        by an ``evm_mine`` (automine off meanwhile); returns the hashes. anvil's automine seals
        whatever arrived together up to the block gas limit and then leaves the rest pending
        until the next arrival, so a stream sent faster than it mines stalls; sealing each array
        explicitly measures the same work without the stall."""
        rpc = self.rpc
        hashes: list[str] = []
        rpc.call("evm_setAutomine", [False])
        try:
            for i in range(0, len(raws), per_block):
                hashes += rpc.send_raw(raws[i:i + per_block], per_block)
                rpc.call("evm_mine")
            for _ in range(10_000):  # leftovers that did not fit a block's gas limit
                if int(rpc.call("txpool_status")["pending"], 16) == 0:
                    break
                rpc.call("evm_mine")
        finally:
            rpc.call("evm_setAutomine", [True])
        return hashes

    def sign_tx(self, sender: LocalAccount, to: str, data: bytes, gas: int) -> bytes:
        """A legacy zero-price transaction with this rig's local nonce for `sender`."""
        nonce = self.nonces.get(sender.address)
        if nonce is None:
            nonce = int(self.rpc.call("eth_getTransactionCount", [sender.address, "pending"]), 16)
        self.nonces[sender.address] = nonce + 1
        tx = {"nonce": nonce, "gas": gas, "gasPrice": 0, "to": to, "value": 0, "data": data, "chainId": self.chain_id}
        return bytes(sender.sign_transaction(tx).raw_transaction)

    def transact_all(self, sender: LocalAccount, calls: Iterable[tuple[str, bytes, int]]) -> list[dict[str, Any]]:
        """Sign, send in JSON-RPC arrays, wait for every receipt; raise if one failed."""
        raws = [self.sign_tx(sender, to, data, gas) for to, data, gas in calls]
        if not raws:
            return []
        hashes = self.send_mined(raws, max(1, 29_000_000 // max(gas for _, _, gas in calls)))
        self.rpc.wait_receipt(hashes[-1])
        receipts = self.rpc.receipts(hashes)
        failed = [r["transactionHash"] for r in receipts if int(r["status"], 16) != 1]
        if failed:
            raise RpcError(f"{len(failed)} transactions failed, first {failed[0]}")
        return receipts

    # -- orders ----------------------------------------------------------------------
    def order(self, debtor: LocalAccount, creditor: LocalAccount, amount: int, *, deadline: int | None = None,
              flags: int = 0, uetr: bytes | None = None, instruction_hash: bytes | None = None) -> PaymentOrder:
        return PaymentOrder(uetr or uuid.uuid4().bytes, debtor.address, creditor.address, USD, amount, flags,
                            deadline if deadline is not None else int(time.time()) + DAY,
                            instruction_hash or os.urandom(32))

    def signed_orders(self, n: int, *, pairs: Sequence[tuple[int, int]] | None = None,
                      amount: int = 1) -> list[tuple[PaymentOrder, bytes]]:
        """`n` bank-signed orders between the rig's banks (round robin over `pairs`)."""
        pairs = pairs or ring_pairs(len(self.banks))
        out = []
        for k in range(n):
            d, c = pairs[k % len(pairs)]
            o = self.order(self.banks[d], self.banks[c], amount + k % 7)
            out.append((o, self.signer.sign(bytes(self.banks[d].key), o)))
        return out


def ring_pairs(n: int) -> list[tuple[int, int]]:
    """Debtor/creditor index pairs over n banks, every bank paying and paid."""
    return [(i, (i * 7 + 1 + j) % n) for j in range(3) for i in range(n) if (i * 7 + 1 + j) % n != i]


def start_rig(n_banks: int = 16, *, funding: int = 10**18, extra_relayers: int = 1,
              log_file: os.PathLike[str] | None = None) -> Rig:
    """Fresh anvil, deploy, register and fund `n_banks` banks in USD."""
    anvil = AnvilProcess(anvil_binary(PROJECT_ROOT), port=None, state_file=None, state_interval=1,
                         log_file=log_file)  # type: ignore[arg-type]
    try:
        w3 = make_web3(anvil.url, timeout=300)
        keys = dev_accounts()
        relayers = [keys[1]] + [keys[2 + i] for i in range(extra_relayers)]
        deployment = deploy(w3, keys[0], [r.address for r in relayers], name="bench", rpc_url=anvil.url)
        client = LedgerClient(w3, deployment, operator=TxSender(w3, keys[0]), relayer=TxSender(w3, keys[1]))
        rig = Rig(anvil, deployment, client, Rpc(anvil.url), [Account.create() for _ in range(n_banks)], [],
                  relayers, BankSigner(deployment.chain_id, deployment.ledger))
        rig.bics = [bench_bic(i) for i in range(n_banks)]
        calls: list[tuple[str, bytes, int]] = []
        for bank, bic in zip(rig.banks, rig.bics, strict=True):
            calls.append((deployment.registry, encode_call(
                "register(address,bytes11,bytes2,uint8)", ["address", "bytes11", "bytes2", "uint8"],
                [bank.address, bic.encode(), b"US", ROLE_BANK]), GAS_REGISTER))
        for bank in rig.banks:
            calls.append((deployment.ledger, encode_call(
                "fund(address,bytes3,uint256,bytes32)", ["address", "bytes3", "uint256", "bytes32"],
                [bank.address, USD, funding, os.urandom(32)]), GAS_ADMIN))
        rig.transact_all(keys[0], calls)
        return rig
    except BaseException:
        anvil.stop()
        raise


def bench_bic(i: int) -> str:
    """BIC11 of bench bank i: BNxxUS33XXX with xx two letters."""
    return f"BN{chr(65 + i // 26 % 26)}{chr(65 + i % 26)}US33XXX"


def warm_up(rig: Rig, pairs: Sequence[tuple[int, int]] | None = None) -> None:
    """One settled payment per pair, so every balance slot and today's outflow counters exist."""
    pairs = pairs or ring_pairs(len(rig.banks))
    for chunk in _chunks([rig.order(rig.banks[d], rig.banks[c], 1) for d, c in pairs], 100):
        sigs = [rig.signer.sign(bytes(_bank_of(rig, o.debtor).key), o) for o in chunk]
        rig.transact_all(rig.relayers[-1], [(rig.ledger, LedgerClient.encode_batch(chunk, sigs),
                                             LedgerClient.batch_gas(len(chunk)))])


def _bank_of(rig: Rig, address: str) -> LocalAccount:
    for b in rig.banks:
        if b.address == address:
            return b
    raise KeyError(address)


def _chunks(seq: Sequence[Any], n: int) -> list[Sequence[Any]]:
    return [seq[i:i + n] for i in range(0, len(seq), n)]


# ---------------------------------------------------------------------------- raw ceiling
@dataclass
class RawResult:
    payments: int
    seconds: float
    transactions: int
    gas_per_payment: float
    prepare_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.payments / self.seconds if self.seconds else 0.0


def raw_single(rig: Rig, n: int, *, per_request: int = 100) -> RawResult:
    """Pre-signed submitPayment transactions, one payment each, sent as JSON-RPC batch arrays
    of eth_sendRawTransaction (`per_request` a block, ``Rig.send_mined``); timed from the first
    send to the last receipt."""
    t0 = time.perf_counter()
    relayer = rig.relayers[0]
    signed = rig.signed_orders(n)
    raws = [rig.sign_tx(relayer, rig.ledger, LedgerClient.encode_submit(o, s), GAS_SUBMIT) for o, s in signed]
    prepare = time.perf_counter() - t0
    start = time.perf_counter()
    hashes = rig.send_mined(raws, per_request)
    last = rig.rpc.wait_receipt(hashes[-1])
    seconds = time.perf_counter() - start
    _check_all_mined(rig, hashes, last)
    receipts = rig.rpc.receipts(hashes[-50:])
    gas = sum(int(r["gasUsed"], 16) for r in receipts) / len(receipts)
    return RawResult(n, seconds, len(hashes), gas, prepare)


def raw_batch(rig: Rig, n: int, *, batch: int = 100, per_request: int = 2) -> RawResult:
    """settleBatch of `batch` bank-signed orders per transaction. Orders are signed before
    the timed window (the banks' part); the window holds encoding, the relayer's transaction
    signature, sending and mining (`per_request` transactions a block: as many as their gas
    limits fit in anvil's 30M block, ``Rig.send_mined``)."""
    relayer = rig.relayers[0]
    t0 = time.perf_counter()
    signed = rig.signed_orders(n)
    prepare = time.perf_counter() - t0
    start = time.perf_counter()
    pending: list[bytes] = []
    hashes: list[str] = []
    for chunk in _chunks(signed, batch):
        data = LedgerClient.encode_batch([o for o, _ in chunk], [s for _, s in chunk])
        pending.append(rig.sign_tx(relayer, rig.ledger, data, LedgerClient.batch_gas(len(chunk))))
        if len(pending) == per_request:
            hashes += rig.send_mined(pending, per_request)
            pending = []
    if pending:
        hashes += rig.send_mined(pending, per_request)
    last = rig.rpc.wait_receipt(hashes[-1])
    seconds = time.perf_counter() - start
    _check_all_mined(rig, hashes, last)
    receipts = rig.rpc.receipts(hashes)
    full = [r for r in receipts if len(r["logs"]) >= batch]
    settled = sum(len(r["logs"]) for r in receipts)
    if settled < n:
        raise RpcError(f"raw batch: {settled} events for {n} payments")
    gas = sum(int(r["gasUsed"], 16) for r in full) / (len(full) * batch) if full else 0.0
    return RawResult(n, seconds, len(hashes), gas, prepare)


def _check_all_mined(rig: Rig, hashes: Sequence[str], last: dict[str, Any]) -> None:
    if int(last["status"], 16) != 1:
        raise RpcError(f"last raw transaction {hashes[-1]} failed")


# ------------------------------------------------------------------------------------ gas
@dataclass
class GasReport:
    single_submit: int
    batch_per_payment: float
    breakdown: list[tuple[str, float]]
    variants: dict[str, float]
    calldata_per_item: float


LOG_SETTLED = 375 + 4 * 375 + 8 * 96  # LOG4, three data words (currency, amount, instructionHash)
LOG_REJECTED = 375 + 2 * 375 + 8 * 32  # LOG2, one data word (reason)
SSTORE_SET = 20_000  # a zero slot set non-zero (already warm from the status read)
SLOAD_COLD = 2_100  # the UETR status read (a slot no earlier item touched); the pause flag's, once a call


def _calldata_gas(data: bytes) -> int:
    return sum(16 if b else 4 for b in data)


def measure_gas(rig: Rig, n: int = 100) -> GasReport:
    """Gas of one steady-state submitPayment, of a settleBatch of `n` between existing
    (warm) accounts, and a per-item breakdown from crafted batches that stop at each check
    (each run on an evm_snapshot and reverted).

    Every crafted batch uses the same 8 debtor/creditor pairs as the full one, so what a batch
    shares across items (the registry answers it keeps, warm slots) is shared alike. Each
    variant's figure excludes its own calldata (measured apart), so two variants differ only by
    the execution between their stopping points:

    - expired: decoding, loop, UETR read, deadline; a PaymentRejected (LOG2).
    - badsig: + the EIP-712 digest and ecrecover.
    - limit1 (per-payment limit 1 on every debtor): + registry, the per-payment limit read, the
      UETR's status write (rejected).
    - limit2 (daily limit 1 instead): + the day's outflow read, an extra limit read of the same
      kind; its difference to limit1 stands for one such read (R) below.
    - insufficient (debtors defunded): + all limits and the balance read.
    - full: + the balance and outflow writes and a PaymentSettled (LOG4) instead of the LOG2.

    The parts then telescope to the full batch's gasUsed / n: registry = limit1 - badsig -
    20,000 - R (the per-payment read moves to limits), limits = insufficient - limit1, balances =
    full - insufficient - LOG4 + LOG2 + R (the balance read moves here from limits), UETR = cold
    read + new-slot write, the pause flag's cold read (once a call) goes with the registry."""
    relayer, operator = rig.relayers[0], rig.client.operator.account  # type: ignore[union-attr]
    banks = rig.banks[:8]
    pairs = [(i, (i + 1) % 8) for i in range(8)]
    warm_up(rig, pairs)

    def batch_gas(orders: Sequence[PaymentOrder], sigs: Sequence[bytes]) -> tuple[int, bytes]:
        data = LedgerClient.encode_batch(orders, sigs)
        receipt = rig.transact_all(relayer, [(rig.ledger, data, LedgerClient.batch_gas(len(orders)) * 2)])[0]
        return int(receipt["gasUsed"], 16), data

    def make(kind: str) -> tuple[list[PaymentOrder], list[bytes]]:
        orders, sigs = [], []
        for k in range(n):
            d, c = pairs[k % len(pairs)]
            deadline = 1 if kind == "expired" else None
            o = rig.order(banks[d], banks[c], 10 + k % 5, deadline=deadline)
            key = bytes(banks[(d + 3) % 8].key) if kind == "badsig" else bytes(banks[d].key)
            orders.append(o)
            sigs.append(rig.signer.sign(key, o))
        return orders, sigs

    def operator_calls(signature: str, types: list[str], rows: list[list[Any]]) -> None:
        rig.transact_all(operator, [(rig.ledger, encode_call(signature, types, row), GAS_ADMIN) for row in rows])

    variants: dict[str, float] = {}  # gasUsed / n, calldata included (as reported)
    execution: dict[str, float] = {}  # gasUsed / n without the batch's calldata
    full_data = b""

    def run(kind: str, setup: Any = None, orders_kind: str | None = None) -> None:
        nonlocal full_data
        snap = rig.rpc.snapshot()
        try:
            if setup is not None:
                setup()
            used, data = batch_gas(*make(orders_kind or kind))
            variants[kind] = used / n
            execution[kind] = (used - _calldata_gas(data) + _calldata_gas(data[:4])) / n
            if kind == "full":
                full_data = data
        finally:
            rig.rpc.revert(snap)
            rig.nonces.clear()

    # single submitPayment, steady state
    snap = rig.rpc.snapshot()
    o = rig.order(banks[0], banks[1], 5)
    r = rig.transact_all(relayer, [(rig.ledger, LedgerClient.encode_submit(o, rig.signer.sign(bytes(banks[0].key), o)),
                                    GAS_SUBMIT)])[0]
    single = int(r["gasUsed"], 16)
    rig.rpc.revert(snap)
    rig.nonces.clear()

    limits_sig, limits_types = "setLimits(address,bytes3,uint128,uint128)", ["address", "bytes3", "uint128", "uint128"]
    run("full")
    run("expired")
    run("badsig")
    run("limit1", lambda: operator_calls(limits_sig, limits_types, [[b.address, USD, 1, 0] for b in banks]), "full")
    run("limit2", lambda: operator_calls(limits_sig, limits_types, [[b.address, USD, 0, 1] for b in banks]), "full")
    run("insufficient", lambda: operator_calls(
        "defund(address,bytes3,uint256,bytes32)", ["address", "bytes3", "uint256", "bytes32"],
        [[b.address, USD, rig.client.balance_of(b.address, "USD"), b"\0" * 32] for b in banks]), "full")

    x = execution
    calldata = (_calldata_gas(full_data) - _calldata_gas(full_data[:4])) / n
    read = x["limit2"] - x["limit1"]  # R: one limit slot's lookup, read and compare
    pause = SLOAD_COLD / n
    breakdown = [
        ("transaction base 21,000, over the batch", 21_000 / n),
        ("calldata (order 8 words + signature)", calldata),
        ("ABI decoding, loop, deadline check, relayer role check", x["expired"] - LOG_REJECTED - SLOAD_COLD
         - 21_000 / n - pause),
        ("signature (EIP-712 digest + ecrecover)", x["badsig"] - x["expired"]),
        ("registry and pause checks (areActive once per party a call)", x["limit1"] - x["badsig"] - SSTORE_SET
         - read + pause),
        ("limits (per payment, daily outflow, bilateral cap flag)", x["insufficient"] - x["limit1"]),
        ("balances (read, debit, credit) + daily outflow counter", x["full"] - x["insufficient"] + LOG_REJECTED
         - LOG_SETTLED + read),
        ("UETR (status read, cold + new slot written 20,000)", SLOAD_COLD + SSTORE_SET),
        ("event PaymentSettled (LOG4, 3 data words)", LOG_SETTLED),
    ]
    return GasReport(single, variants["full"], breakdown, variants, calldata)


@dataclass
class FxGas:
    per_payment: float  # settleFxBatch of `batch`, gasUsed / batch
    single: int  # a settleFxBatch of one
    batch: int


def measure_fx_gas(rig: Rig, n: int = 100) -> FxGas:
    """Gas of FX payment-versus-payment: settleFxBatch (FxSettlement, deployed with the ledger)
    of `n` orders USD -> EUR between existing accounts, through one provider's quote, and of
    one order alone. Each order: the debtor's and the provider's signatures, the quote's
    capacity, then the ledger's four balance movements (settleFxLegs). Run on a snapshot."""
    from chain_gateway.fx import (
        FxOrder,
        FxQuote,
        debit_amount,
        encode_fx_batch,
        fx_batch_gas,
        new_quote_id,
        sign_fx_order,
        sign_quote,
    )
    from chain_gateway.ledger import ROLE_FX_PROVIDER

    fx = rig.deployment.fx_settlement
    if fx is None:
        raise RuntimeError("the deployment has no FxSettlement")
    operator, relayer = rig.client.operator.account, rig.relayers[0]  # type: ignore[union-attr]
    banks = rig.banks[:8]
    provider = Account.create()
    snap = rig.rpc.snapshot()
    try:
        rig.transact_all(operator, [
            (rig.deployment.registry, encode_call("register(address,bytes11,bytes2,uint8)",
                                                  ["address", "bytes11", "bytes2", "uint8"],
                                                  [provider.address, b"FXPVSGSGXXX", b"SG", ROLE_BANK | ROLE_FX_PROVIDER]),
             GAS_REGISTER),
            (rig.ledger, encode_call("fund(address,bytes3,uint256,bytes32)", ["address", "bytes3", "uint256", "bytes32"],
                                     [provider.address, b"EUR", 10**18, b"\0" * 32]), GAS_ADMIN)])
        rate = 9 * 10**17  # 0.9 EUR per USD
        quote = FxQuote(new_quote_id(), provider.address, "USD", "EUR", rate, 10**18, int(time.time()) + DAY)
        qsig = sign_quote(bytes(provider.key), quote, rig.chain_id, fx)

        def fx_batch(count: int, pairs: Sequence[tuple[int, int]]) -> int:
            orders, sigs = [], []
            for k in range(count):
                d, c = pairs[k % len(pairs)]
                amount = 900 + k % 5
                o = FxOrder(uuid.uuid4().bytes, banks[d].address, banks[c].address, "EUR", amount, quote.quote_id,
                            provider.address, "USD", debit_amount(amount, rate), int(time.time()) + DAY,
                            os.urandom(32))
                orders.append(o)
                sigs.append(sign_fx_order(bytes(banks[d].key), o, rig.chain_id, fx))
            data = encode_fx_batch(orders, sigs, [quote] * count, [qsig] * count)
            receipt = rig.transact_all(relayer, [(fx, data, fx_batch_gas(count))])[0]
            settled = sum(1 for log in receipt["logs"] if log["topics"][0] == "0x" + FX_SETTLED_TOPIC.hex())
            if settled != count:
                raise RuntimeError(f"FX batch settled {settled} of {count}")
            return int(receipt["gasUsed"], 16)

        pairs = [(i, (i + 1) % 8) for i in range(8)]
        fx_batch(len(pairs), pairs)  # warm-up: every creditor's EUR balance and the quote's counter exist
        single = fx_batch(1, pairs[:1])
        per = fx_batch(n, pairs) / n
    finally:
        rig.rpc.revert(snap)
        rig.nonces.clear()
    return FxGas(per, single, n)


FX_SETTLED_TOPIC = keccak(text="FxSettled(bytes16,bytes32,address,bytes3,uint256,bytes3,uint256)")


# ----------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_chain", description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=20_000)
    parser.add_argument("--singles", type=int, default=5_000)
    args = parser.parse_args(argv)
    rig = start_rig()
    try:
        warm_up(rig)
        single = raw_single(rig, args.singles)
        print(f"raw submitPayment, one per tx : {single.rate:8,.0f} payments/s ({single.payments} in "
              f"{single.seconds:.2f} s, {single.gas_per_payment:,.0f} gas each)")
        batch = raw_batch(rig, args.payments)
        print(f"raw settleBatch of 100        : {batch.rate:8,.0f} payments/s ({batch.payments} in "
              f"{batch.seconds:.2f} s, {batch.gas_per_payment:,.0f} gas each)")
        gas = measure_gas(rig)
        print(f"gas: submitPayment {gas.single_submit:,}; settleBatch of 100 {gas.batch_per_payment:,.0f} per payment")
        for label, value in gas.breakdown:
            print(f"  {label:<55} {value:>8,.0f}")
        print(f"  {'sum':<55} {sum(v for _, v in gas.breakdown):>8,.0f}")
        fx = measure_fx_gas(rig)
        print(f"gas: FX PvP settleFxBatch of {fx.batch} {fx.per_payment:,.0f} per payment; of 1 {fx.single:,}")
    finally:
        rig.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
