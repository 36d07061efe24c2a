"""Read the chain for the indexer and the reconciliation: head, block headers, logs and
view calls, behind one small interface.

Two implementations:

* ``JsonRpcSource`` for an HTTP node (anvil, Besu, geth): plain JSON-RPC over one keep-alive
  httpx connection; block headers and view calls go out as one JSON-RPC *batch* request, and
  responses are parsed straight from JSON (web3's result formatters cost more than the
  request for 10,000 logs).
* ``Web3Source`` for any other provider (eth-tester in-process): the web3 calls themselves.

``make_source(w3)`` picks one for the LedgerClient's ``w3``.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import httpx
from web3 import HTTPProvider, Web3
from web3.exceptions import BlockNotFound

from chain_gateway.errors import ChainUnavailable, GatewayError
from chain_gateway.indexer.events import RawLog


class BlockHeader(NamedTuple):
    number: int
    hash: str  # 0x + lower-case hex
    parent_hash: str
    timestamp: int


class RpcError(GatewayError):
    """Raised when the node answers a JSON-RPC request with an error object."""

    title = "JSON-RPC error"


class ChainSource(Protocol):
    """What the indexer reads from the chain."""

    def head(self) -> int: ...

    def headers(self, numbers: Sequence[int]) -> dict[int, BlockHeader | None]:
        """Headers by number; None for a block the chain does not have (yet, or any more)."""
        ...

    def logs(self, from_block: int, to_block: int, addresses: Sequence[str],
             topics: Sequence[Sequence[bytes]] | None = None) -> list[RawLog]: ...

    def calls(self, calls: Sequence[tuple[str, bytes]], block: int) -> list[bytes]:
        """eth_call of each (to, data) at `block`."""
        ...


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()


def _topic_filter(topics: Sequence[Sequence[bytes]] | None) -> list[Any] | None:
    if topics is None:
        return None
    return [[_hex(t) for t in group] if len(group) != 1 else _hex(group[0]) for group in topics]


class Web3Source:
    """Reads through web3 (any provider; used for eth-tester)."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def headers(self, numbers: Sequence[int]) -> dict[int, BlockHeader | None]:
        out: dict[int, BlockHeader | None] = {}
        for n in numbers:
            try:
                b = self.w3.eth.get_block(n)
            except BlockNotFound:
                out[n] = None
                continue
            out[n] = BlockHeader(int(b["number"]), _hex(b["hash"]), _hex(b["parentHash"]), int(b["timestamp"]))
        return out

    def logs(self, from_block: int, to_block: int, addresses: Sequence[str],
             topics: Sequence[Sequence[bytes]] | None = None) -> list[RawLog]:
        params: dict[str, Any] = {"fromBlock": from_block, "toBlock": to_block, "address": list(addresses)}
        if topics is not None:
            params["topics"] = _topic_filter(topics)
        return [
            RawLog(int(x["blockNumber"]), _hex(x["blockHash"]), int(x["logIndex"]), _hex(x["transactionHash"]),
                   str(x["address"]).lower(), tuple(_hex(t) for t in x["topics"]), bytes(x["data"]), None)
            for x in self.w3.eth.get_logs(params)  # type: ignore[arg-type]
        ]

    def calls(self, calls: Sequence[tuple[str, bytes]], block: int) -> list[bytes]:
        return [bytes(self.w3.eth.call({"to": to, "data": data}, block)) for to, data in calls]


class JsonRpcSource:
    """Plain JSON-RPC over HTTP with batching (not web3's batch API)."""

    def __init__(self, url: str, *, timeout: float = 30.0, batch_size: int = 500) -> None:
        self.url = url
        self.batch_size = batch_size
        self._client = httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._client.close()

    def _post(self, payload: Any) -> Any:
        try:
            response = self._client.post(self.url, json=payload)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ChainUnavailable(f"chain node at {self.url} did not answer: {exc}") from exc

    def rpc(self, method: str, params: list[Any]) -> Any:
        reply = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params})
        if "error" in reply:
            raise RpcError(f"{method}: {reply['error'].get('message', reply['error'])}", rpc_error=reply["error"])
        return reply.get("result")

    def batch(self, requests: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Results in request order; one HTTP request per `batch_size` calls."""
        results: list[Any] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start:start + self.batch_size]
            first = next(self._ids)
            payload = [{"jsonrpc": "2.0", "id": first + i, "method": m, "params": p} for i, (m, p) in enumerate(chunk)]
            self._ids = itertools.count(first + len(chunk))
            replies = self._post(payload)
            if not isinstance(replies, list):  # a node that refuses batches answers with one error
                raise RpcError(f"batch refused: {replies}")
            by_id = {r.get("id"): r for r in replies}
            for i, (method, _) in enumerate(chunk):
                reply = by_id.get(first + i)
                if reply is None or "error" in reply:
                    error = reply.get("error") if reply else "no reply"
                    raise RpcError(f"{method}: {error}", rpc_error=error)
                results.append(reply.get("result"))
        return results

    def head(self) -> int:
        return int(self.rpc("eth_blockNumber", []), 16)

    def headers(self, numbers: Sequence[int]) -> dict[int, BlockHeader | None]:
        results = self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        out: dict[int, BlockHeader | None] = {}
        for n, b in zip(numbers, results, strict=True):
            out[n] = None if b is None else BlockHeader(int(b["number"], 16), str(b["hash"]).lower(),
                                                        str(b["parentHash"]).lower(), int(b["timestamp"], 16))
        return out

    def logs(self, from_block: int, to_block: int, addresses: Sequence[str],
             topics: Sequence[Sequence[bytes]] | None = None) -> list[RawLog]:
        params: dict[str, Any] = {"fromBlock": hex(from_block), "toBlock": hex(to_block), "address": list(addresses)}
        if topics is not None:
            params["topics"] = _topic_filter(topics)
        fromhex = bytes.fromhex
        out = []
        for x in self.rpc("eth_getLogs", [params]):
            if x.get("removed"):
                continue
            ts = x.get("blockTimestamp")
            out.append(RawLog(int(x["blockNumber"], 16), x["blockHash"].lower(), int(x["logIndex"], 16),
                              x["transactionHash"].lower(), x["address"].lower(),
                              tuple(x["topics"]), fromhex(x["data"][2:]),
                              int(ts, 16) if ts else None))
        return out

    def calls(self, calls: Sequence[tuple[str, bytes]], block: int) -> list[bytes]:
        results = self.batch([("eth_call", [{"to": to, "data": _hex(data)}, hex(block)]) for to, data in calls])
        return [bytes.fromhex(str(r)[2:]) for r in results]


def make_source(w3: Web3) -> ChainSource:
    """JSON-RPC batching for an HTTP provider, web3 itself for anything else."""
    provider = w3.provider
    if isinstance(provider, HTTPProvider) and provider.endpoint_uri:
        return JsonRpcSource(str(provider.endpoint_uri))
    return Web3Source(w3)
