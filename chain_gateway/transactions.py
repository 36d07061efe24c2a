"""Sign and send transactions from one local key, with a nonce manager and custom-error
decoding. The gateway never asks the node to sign: keys stay in this process.

Calls are encoded with eth_abi directly (web3's contract helpers cost ~1 ms a call) and
gas is always given explicitly (estimation costs a round trip and, on eth-tester, ~5x the
time of the transaction itself).
"""
from __future__ import annotations

import ast
import http.client
import itertools
import json
import select
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast
from urllib.parse import urlsplit

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TimeExhausted
from web3.types import BlockIdentifier

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


@lru_cache(maxsize=512)
def selector(signature: str) -> bytes:
    """The 4-byte function selector of a signature (cached: a keccak per call otherwise)."""
    return bytes(function_signature_to_4byte_selector(signature))


def encode_call(signature: str, types: Sequence[str], args: Sequence[Any]) -> bytes:
    """Selector + eth_abi encoding: the fast path for every call the gateway makes."""
    return selector(signature) + abi_encode(list(types), list(args))


class JsonRpcError(GatewayError):
    """Raised when the node answers a JSON-RPC request with an error object; `data` holds the
    error's data (revert data for a failed call), as web3's errors carry it."""

    title = "Chain node error"

    def __init__(self, method: str, error: Any) -> None:
        message = error.get("message", error) if isinstance(error, dict) else error
        super().__init__(f"{method}: {message}", rpc_error=error)
        self.data = error.get("data") if isinstance(error, dict) else None
        self.args = (f"{method}: {message}", error)


class JsonRpc:
    """Plain JSON-RPC over HTTP for the hot path's reads (intake's registry and balance checks).

    web3.py's request stack costs ~2 ms of CPU a call (middlewares, formatters, validation),
    requests ~0.45 ms; http.client on a kept-alive connection ~0.08 ms. One connection per
    thread, reopened when the node has closed it. Only for plain HTTP(S) endpoints with no
    request options beyond headers and a timeout: ``for_web3`` returns None otherwise (and for
    eth-tester), and callers use web3. Transport failures raise ChainUnavailable.
    """

    def __init__(self, url: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        self.url = url
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._timeout = timeout
        self._local = threading.local()
        self._ids = itertools.count(1)

    @classmethod
    def for_web3(cls, w3: Web3) -> JsonRpc | None:
        from web3 import HTTPProvider

        provider = w3.provider
        if not isinstance(provider, HTTPProvider) or not provider.endpoint_uri:
            return None
        url = str(provider.endpoint_uri)
        parts = urlsplit(url)
        kwargs = dict(provider.get_request_kwargs())
        headers, timeout = kwargs.pop("headers", {}), kwargs.pop("timeout", 10.0)
        if parts.scheme not in ("http", "https") or parts.username or kwargs or isinstance(timeout, tuple):
            return None  # proxies, client certificates, credentials in the URL...: web3 handles those
        return cls(url, headers=dict(headers), timeout=float(timeout))

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None:
            readable, _, _ = select.select([conn.sock], [], [], 0)
            if readable:  # the node closed the kept-alive connection (EOF pending): start again
                conn.close()
                conn = None
        if conn is None:
            factory = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._local.conn = factory(self._host, self._port, timeout=self._timeout)
        return conn

    def _post(self, payload: Any) -> Any:
        body = json.dumps(payload).encode()
        conn = self._connection()
        try:
            conn.request("POST", self._path, body, self._headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            self._local.conn = None
            raise ChainUnavailable(f"chain node did not answer: {exc}") from exc
        if response.status >= 400 and not data.lstrip().startswith((b"{", b"[")):
            raise ChainUnavailable(f"chain node at {self.url} answered HTTP {response.status}")
        return json.loads(data)

    def request(self, method: str, params: Sequence[Any]) -> Any:
        reply = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)})
        if "error" in reply:
            raise JsonRpcError(method, reply["error"])
        return reply.get("result")

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """One HTTP request for all `calls`; results in order, a JsonRpcError where one failed."""
        ids = [next(self._ids) for _ in calls]
        replies = self._post([{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                              for i, (m, p) in zip(ids, calls, strict=True)])
        if not isinstance(replies, list):  # a node that refuses batches answers with one error
            raise JsonRpcError("batch", replies.get("error", replies) if isinstance(replies, dict) else replies)
        by_id = {r.get("id"): r for r in replies}
        out: list[Any] = []
        for i, (method, _) in zip(ids, calls, strict=True):
            reply = by_id.get(i)
            if reply is None or "error" in reply:
                out.append(JsonRpcError(method, reply.get("error") if reply else "no reply"))
            else:
                out.append(reply.get("result"))
        return out

    def eth_calls(self, calls: Sequence[tuple[str, bytes]], block: int | str = "latest") -> list[bytes]:
        """eth_call of each (to, data) at one block, in one request; raises if any failed."""
        tag = hex(block) if isinstance(block, int) else block
        results = self.batch([("eth_call", [{"to": to, "data": "0x" + data.hex()}, tag]) for to, data in calls])
        for r in results:
            if isinstance(r, JsonRpcError):
                raise r
        return [bytes.fromhex(str(r)[2:]) for r in results]


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
        # plain HTTP nodes: a JsonRpc for the hot path's reads (the submitter's receipt polls:
        # ~0.1 ms of CPU against ~2 ms through web3's request stack); None for other providers
        self.rpc: JsonRpc | None = JsonRpc.for_web3(w3)

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
            return bytes(self.w3.eth.call({"from": self.address, "to": to, "data": data}, cast(BlockIdentifier, block)))
        except Exception as exc:
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
            except Exception as exc:
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
                except Exception as exc:
                    raise self._failure(exc, tx_hash) from exc
            raise TransactionFailed(f"transaction {tx_hash} reverted", tx_hash=tx_hash)
        return receipt


def _is_transport_error(exc: BaseException) -> bool:
    import requests

    return isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError))


def keccak_text(text: str) -> bytes:
    return keccak(text=text)
