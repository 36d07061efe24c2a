"""Sign and send transactions from one local key, with a nonce manager and custom-error
decoding. The gateway never asks the node to sign: keys stay in this process.

Calls are encoded with eth_abi directly (web3's contract helpers cost ~1 ms a call) and
gas is always given explicitly (estimation costs a round trip and, on eth-tester, ~5x the
time of the transaction itself).
"""
from __future__ import annotations

import ast
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TimeExhausted

from chain_gateway.errors import ChainUnavailable, GatewayError


class TransactionFailed(GatewayError):
    """Raised when a transaction reverts; carries the decoded custom error when known."""

    title = "Transaction failed"

    def __init__(self, detail: str, *, error_name: str | None = None, error_args: dict[str, Any] | None = None,
                 tx_hash: str | None = None) -> None:
        super().__init__(detail, error_name=error_name, error_args=error_args or {}, tx_hash=tx_hash)
        self.error_name = error_name
        self.error_args = error_args or {}
        self.tx_hash = tx_hash


@dataclass(frozen=True)
class ErrorSpec:
    name: str
    types: tuple[str, ...]
    names: tuple[str, ...]


class ErrorDecoder:
    """Selector -> custom error, from one or more ABIs (plus Solidity's Error/Panic)."""

    def __init__(self, *abis: Sequence[dict[str, Any]]) -> None:
        self._specs: dict[bytes, ErrorSpec] = {
            function_signature_to_4byte_selector("Error(string)"): ErrorSpec("Error", ("string",), ("message",)),
            function_signature_to_4byte_selector("Panic(uint256)"): ErrorSpec("Panic", ("uint256",), ("code",)),
        }
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = tuple(_abi_type(i) for i in item["inputs"])
                sig = f"{item['name']}({','.join(types)})"
                self._specs[function_signature_to_4byte_selector(sig)] = ErrorSpec(
                    item["name"], types, tuple(i["name"] for i in item["inputs"])
                )

    def name_of(self, selector: bytes) -> str | None:
        spec = self._specs.get(bytes(selector)[:4])
        return spec.name if spec else None

    def selector_of(self, name: str) -> bytes:
        for sel, spec in self._specs.items():
            if spec.name == name:
                return sel
        raise GatewayError(f"unknown custom error {name}")

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]] | None:
        spec = self._specs.get(bytes(data)[:4])
        if spec is None:
            return None
        values = abi_decode(list(spec.types), bytes(data)[4:]) if spec.types else ()
        return spec.name, dict(zip(spec.names, values, strict=True))


def _abi_type(inp: dict[str, Any]) -> str:
    if inp["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in inp["components"])
        return f"({inner}){inp['type'][5:]}"
    return str(inp["type"])


def encode_call(signature: str, types: Sequence[str], args: Sequence[Any]) -> bytes:
    """Selector + eth_abi encoding: the fast path for every call the gateway makes."""
    return function_signature_to_4byte_selector(signature) + abi_encode(list(types), list(args))


def _revert_data(exc: BaseException) -> bytes | None:
    """Dig the revert data out of whatever the provider raised."""
    for attr in ("data",):
        data = getattr(exc, attr, None)
        if isinstance(data, str) and data.startswith("0x"):
            return bytes(HexBytes(data))
        if isinstance(data, (bytes, bytearray)):
            return bytes(data)
        if isinstance(data, dict) and isinstance(data.get("data"), str):
            return bytes(HexBytes(data["data"]))
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, dict):
            inner = arg.get("data")
            if isinstance(inner, str) and inner.startswith("0x"):
                return bytes(HexBytes(inner))
        if isinstance(arg, str) and arg.startswith("0x") and len(arg) >= 10:
            return bytes(HexBytes(arg))
        if isinstance(arg, str) and arg.startswith("execution reverted: b"):
            # eth-tester reports the revert data as a Python bytes literal
            raw = ast.literal_eval(arg[len("execution reverted: "):])
            if isinstance(raw, bytes):
                return raw
    return None


class TxSender:
    """One account's transactions: local nonces, explicit gas, fee policy, receipts.

    The nonce counter is taken under a lock and only advanced once the node accepted the
    raw transaction, so concurrent callers get neither gaps nor reuse; any failed send (the
    node may have taken it before the reply was lost) resynchronises from the node's
    pending count, and so does `resync_nonce()` after a dropped transaction.
    """

    def __init__(self, w3: Web3, account: LocalAccount, *, decoder: ErrorDecoder | None = None,
                 gas_price_wei: int | None = None, receipt_timeout: float = 30.0) -> None:
        self.w3 = w3
        self.account = account
        self.address = to_checksum_address(account.address)
        self.decoder = decoder or ErrorDecoder()
        self._fixed_gas_price = gas_price_wei
        self.receipt_timeout = receipt_timeout
        self._lock = threading.Lock()
        self._nonce: int | None = None
        self._chain_id = int(w3.eth.chain_id)
        self._fee_cache: tuple[float, dict[str, int]] | None = None

    # --- fees ---------------------------------------------------------------------
    def _fees(self) -> dict[str, int]:
        if self._fixed_gas_price is not None:
            return {"gasPrice": self._fixed_gas_price}
        now = time.monotonic()
        if self._fee_cache and now - self._fee_cache[0] < 2.0:
            return self._fee_cache[1]
        block = self.w3.eth.get_block("latest")
        base_fee = int(block.get("baseFeePerGas", 0) or 0)
        fees = {"gasPrice": 0} if base_fee == 0 else {
            "maxFeePerGas": 2 * base_fee + 10**9, "maxPriorityFeePerGas": 10**9}
        self._fee_cache = (now, fees)
        return fees

    # --- sending --------------------------------------------------------------------
    def call(self, to: str, data: bytes, *, block: int | str = "latest") -> bytes:
        """eth_call, raising TransactionFailed with the decoded custom error on revert."""
        try:
            return bytes(self.w3.eth.call({"from": self.address, "to": to, "data": data}, block))
        except Exception as exc:  # noqa: BLE001 - providers raise many types for a revert
            raise self._failure(exc) from exc

    def _failure(self, exc: BaseException, tx_hash: str | None = None) -> GatewayError:
        data = _revert_data(exc)
        decoded = self.decoder.decode(data) if data else None
        if decoded:
            name, args = decoded
            return TransactionFailed(f"reverted with {name}", error_name=name, error_args=args, tx_hash=tx_hash)
        if _is_transport_error(exc):
            return ChainUnavailable(f"chain node did not answer: {exc}")
        return TransactionFailed(f"transaction failed: {exc}", tx_hash=tx_hash)

    def send(self, to: str | None, data: bytes, *, gas: int, value: int = 0) -> str:
        """Sign and send; returns the tx hash. Nonces are assigned under the lock."""
        fees = self._fees()
        with self._lock:
            if self._nonce is None:
                self._nonce = int(self.w3.eth.get_transaction_count(self.address, "pending"))
            tx: dict[str, Any] = {"nonce": self._nonce, "gas": gas, "value": value, "data": data,
                                  "chainId": self._chain_id, **fees}
            if to is not None:
                tx["to"] = to
            signed = self.account.sign_transaction(tx)
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception as exc:  # noqa: BLE001
                # Resync from the node's pending count on ANY failure, not only nonce errors:
                # after a timeout the node may have accepted the tx, and a mempool node then
                # answers the reused nonce with "already known" / "replacement underpriced".
                self._nonce = None
                raise self._failure(exc) from exc
            self._nonce += 1
        return "0x" + bytes(tx_hash).hex()

    def resync_nonce(self) -> None:
        """Forget the local nonce; the next send reads the node's pending count. For a
        transaction the node dropped: without this, later nonces wait behind the gap forever."""
        with self._lock:
            self._nonce = None

    def wait(self, tx_hash: str, *, timeout: float | None = None) -> dict[str, Any]:
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                HexBytes(tx_hash), timeout=timeout or self.receipt_timeout, poll_latency=0.01)
        except TimeExhausted as exc:
            raise ChainUnavailable(f"no receipt for {tx_hash} within {timeout or self.receipt_timeout} s",
                                   tx_hash=tx_hash) from exc
        return dict(receipt)

    def transact(self, to: str | None, data: bytes, *, gas: int, simulate: bool = True) -> dict[str, Any]:
        """Simulate (to surface the custom error), send, wait; raise on a failed receipt."""
        if simulate and to is not None:
            self.call(to, data, block="pending")
        tx_hash = self.send(to, data, gas=gas)
        receipt = self.wait(tx_hash)
        if receipt["status"] != 1:
            if to is not None:
                try:
                    self.w3.eth.call({"from": self.address, "to": to, "data": data, "gas": gas},
                                     receipt["blockNumber"] - 1)
                except Exception as exc:  # noqa: BLE001
                    raise self._failure(exc, tx_hash) from exc
            raise TransactionFailed(f"transaction {tx_hash} reverted", tx_hash=tx_hash)
        return receipt


def _is_transport_error(exc: BaseException) -> bool:
    import requests

    return isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError))


def keccak_text(text: str) -> bytes:
    return keccak(text=text)
