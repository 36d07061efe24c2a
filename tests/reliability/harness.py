"""Processes for the reliability suites: a standalone anvil (the chain, separate from the
gateway as in production) and gateways run as real processes (``python -m api.run``),
configured only through ``SETTLEMENT_*`` environment variables, that a test can SIGKILL and
start again on the same data folder.

Also the chain-side checks every suite ends with: PaymentSettled events per UETR read with
``eth_getLogs``, and the money invariant (sum of balances == totalSupply per currency) read
from the ledger itself.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_utils import keccak, to_checksum_address

from chain_gateway.chain import AnvilProcess, anvil_binary, dev_accounts
from chain_gateway.config import PROJECT_ROOT
from chain_gateway.ledger import Deployment

PAYMENT_SETTLED = "0x" + keccak(text="PaymentSettled(bytes16,address,address,bytes3,uint256,bytes32)").hex()
FUNDED = "0x" + keccak(text="Funded(address,bytes3,uint256,bytes32)").hex()
DEFUNDED = "0x" + keccak(text="Defunded(address,bytes3,uint256,bytes32)").hex()
NY, FR, LN, TK = "DEMOUS33XXX", "DEMODEFFXXX", "DEMOGB2LXXX", "DEMOJPJTXXX"
DEMO_BANKS = (NY, FR, LN, TK)
DEPLOYMENT_NAME = "reliability"
FIGURES: list[str] = []  # summary lines the suites report (tests/reliability/conftest.py prints them)


def report(line: str) -> None:
    """Print a figure now (with -s) and again in the terminal summary."""
    print("\n" + line)
    FIGURES.append(line)


def write_figures(terminalreporter: Any) -> None:
    """The terminal-summary hook of both suites' conftests: the figures, once."""
    while FIGURES:
        terminalreporter.write_line(FIGURES.pop(0))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# ----------------------------------------------------------------------------- chain
class Chain:
    """A standalone anvil on a fixed loopback port whose state survives restarts
    (``--state`` saved every second and on SIGTERM)."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.state_file = folder / "anvil-state.json"
        self.log_file = folder / "anvil.log"
        self.node: AnvilProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Chain:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.node = AnvilProcess(anvil_binary(PROJECT_ROOT), port=self.port, state_file=self.state_file,
                                 state_interval=1, log_file=self.log_file)
        return self

    def kill(self, *, mining_for: float = 0.5, attempts: int = 5) -> int:
        """SIGKILL after a whole save: the chain loses the blocks mined in the last `mining_for`
        seconds, and comes back as it was at that save. Returns the head it died at.

        anvil's periodic save is not atomic: it reads the block list, then the account state,
        under separate locks. A save taken while blocks are being mined holds their effects
        without the blocks (``scripts/anvil_state_save.py``: 4 SIGKILLs of 8 under load restored
        such a state; in CI, two payments settled in the state and in no block). A
        node restarted from such a save contradicts itself, which no client can repair; the
        reconciliation reports it. Besu's storage is crash-consistent. So mining pauses
        (``evm_setAutomine``) until a save that holds the paused chain's last block is on disk,
        resumes for `mining_for` seconds (payments keep arriving all along), and the node dies
        before its next save.
        """
        if self.node is None:
            raise RuntimeError("the chain is not running")
        for _ in range(attempts):
            try:
                saved = self._whole_save()
            finally:
                self.rpc("evm_setAutomine", [True])
            time.sleep(mining_for)
            head = self.head()
            if self._mtime() == saved:  # no save since: the file on disk is the whole one
                self.node.kill()
                self.node = None
                return head
        raise AssertionError(f"anvil saved its state within {mining_for} s of a whole save {attempts} times")

    def assert_whole(self, block: int) -> None:
        """At `block`, every sender's nonce equals its transactions in blocks 1..`block`: the
        node did not come back from a save torn between its blocks and its accounts."""
        sent: Counter[str] = Counter()
        for n in range(1, block + 1):
            sent.update(tx["from"].lower() for tx in self.rpc("eth_getBlockByNumber", [hex(n), True])["transactions"])
        nonces = {a: int(self.rpc("eth_getTransactionCount", [a, hex(block)]), 16) for a in sent}
        torn = {a: (nonces[a], k) for a, k in sent.items() if nonces[a] != k}
        assert not torn, f"state at block {block} ahead of its blocks, {{sender: (nonce, transactions)}}: {torn}"

    def _mtime(self) -> int:
        try:
            return self.state_file.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def _whole_save(self, timeout: float = 30.0) -> int:
        """Pause mining and wait for a save whose block list ends at the settled head, with no
        block mined since (so its accounts match its blocks); returns its modification time."""
        assert self.node is not None
        deadline = time.monotonic() + timeout
        head = self.node.pause_mining()
        seen = self._mtime()
        while time.monotonic() < deadline:
            now = self._mtime()
            if now == seen:
                time.sleep(0.01)
                continue
            seen = now
            time.sleep(0.1)  # let the write finish
            try:
                best = json.loads(self.state_file.read_bytes())["best_block_number"]
            except (ValueError, KeyError):
                continue  # read mid-write
            if self._mtime() != now:
                continue
            if self.head() != head:  # still mining when the save began: wait for another
                head = self.node.pause_mining()
                continue
            if (int(best, 16) if isinstance(best, str) else int(best)) == head:
                return now
        raise AssertionError(f"no whole anvil state save within {timeout} s")

    def stop(self) -> int | None:
        """Mining paused, SIGTERM: anvil saves a whole state and exits (``AnvilProcess.stop``).
        Returns the head it stopped at; None when it was not running."""
        if self.node is None:
            return None
        head = self.node.stop()
        self.node = None
        return head

    def rpc(self, method: str, params: list[Any] | None = None, *, timeout: float = 30.0) -> Any:
        reply = httpx.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []},
                           timeout=timeout).json()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def head(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)


def send_transfers_until(url: str, sender: str, to: str, stop: threading.Event) -> None:
    """Send a transfer, wait for its receipt, again, until `stop` or the node goes away: the
    closed loop of a chain client, to keep an anvil mining while it is stopped or killed."""
    def call(client: httpx.Client, method: str, params: list[Any]) -> Any:
        return client.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).json()["result"]

    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            try:
                tx = call(client, "eth_sendTransaction", [{"from": sender, "to": to, "value": "0x1", "gas": "0x5208"}])
                while not stop.is_set() and call(client, "eth_getTransactionReceipt", [tx]) is None:
                    time.sleep(0.01)
            except (httpx.HTTPError, KeyError, ValueError):
                return  # the node is gone


def dev_key_hex(index: int) -> str:
    return "0x" + bytes(dev_accounts(index + 1)[index].key).hex()


# ---------------------------------------------------------------------------- gateway
@dataclass
class GatewayProcess:
    """``python -m api.run`` as its own process, on its own data folder and port."""

    data_dir: Path
    rpc_url: str
    deployments_dir: Path
    relayer_index: int = 1
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout_path(self) -> Path:
        return self.data_dir / "gateway.stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.data_dir / "gateway.stderr.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SETTLEMENT_")}
        env.update({
            "SETTLEMENT_ENVIRONMENT": "test",
            "SETTLEMENT_DATA_DIR": str(self.data_dir),
            "SETTLEMENT_DEPLOYMENTS_DIR": str(self.deployments_dir),
            "SETTLEMENT_DEPLOYMENT_NAME": DEPLOYMENT_NAME,
            "SETTLEMENT_PORT": str(self.port),
            "SETTLEMENT_CHAIN": "rpc",
            "SETTLEMENT_RPC_URL": self.rpc_url,
            "SETTLEMENT_DEPLOYER_PRIVATE_KEY": dev_key_hex(0),
            "SETTLEMENT_RELAYER_PRIVATE_KEY": dev_key_hex(self.relayer_index),
            "SETTLEMENT_RPC_TIMEOUT_SECONDS": "5",
            "SETTLEMENT_RECEIPT_TIMEOUT_SECONDS": "10",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    def start(self, *, wait: bool = True, timeout: float = 120.0) -> GatewayProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.stdout_path, "ab")  # noqa: SIM115 - handed to the child
        err = open(self.stderr_path, "ab")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "api.run"], cwd=self.data_dir, env=self.env(),
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
        finally:
            out.close()
            err.close()
        self.starts += 1
        if wait:
            self.wait_serving(timeout)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_serving(self, timeout: float = 120.0, *, status: Iterable[str] = ("ok",)) -> dict[str, Any]:
        """Until /healthz answers with one of `status`; fails early if the process died."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"gateway exited ({self.proc.returncode if self.proc else None}):\n"
                                     + self.tail())
            try:
                last = httpx.get(self.url + "/healthz", timeout=5).json()
                if last.get("status") in status:
                    return dict(last)
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise AssertionError(f"gateway not serving within {timeout} s (last /healthz: {last}):\n{self.tail()}")

    def sigkill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGINT, as Ctrl-C: uvicorn shuts down and the gateway stops its threads."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, n: int = 60) -> str:
        out = []
        for path in (self.stdout_path, self.stderr_path):
            if path.is_file():
                out += path.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(out)

    @property
    def credentials(self) -> dict[str, Any]:
        return dict(json.loads((self.data_dir / "credentials.json").read_text()))

    def client(self, key: str | None = None, *, timeout: float = 30.0, **headers: str) -> httpx.Client:
        h = dict(headers)
        if key:
            h["Authorization"] = f"Bearer {key}"
        return httpx.Client(base_url=self.url, headers=h, timeout=timeout)

    def deployment(self) -> Deployment:
        return Deployment.load(self.deployments_dir / f"{DEPLOYMENT_NAME}.json")


# ------------------------------------------------------------------------ chain checks
def settled_events(chain: Chain, ledger: str, from_block: int) -> Counter[str]:
    """PaymentSettled events per UETR (lower-case UUID text), read with eth_getLogs."""
    counts: Counter[str] = Counter()
    head = chain.head()
    step = 2_000
    for start in range(from_block, head + 1, step):
        logs = chain.rpc("eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(min(head, start + step - 1)),
                                          "address": ledger, "topics": [PAYMENT_SETTLED]}])
        for lg in logs:
            counts[str(uuid.UUID(bytes=bytes.fromhex(lg["topics"][1][2:])[:16]))] += 1
    return counts


def _call_uint(chain: Chain, to: str, data: bytes) -> int:
    return int(chain.rpc("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"]), 16)


def money_invariant(chain: Chain, deployment: Deployment) -> dict[str, tuple[int, int]]:
    """Per currency: (sum of every balance ever touched, totalSupply), read on-chain."""
    from chain_gateway.transactions import encode_call

    head = chain.head()
    accounts: set[tuple[str, bytes]] = set()
    logs = chain.rpc("eth_getLogs", [{"fromBlock": hex(deployment.deploy_block), "toBlock": hex(head),
                                      "address": deployment.ledger,
                                      "topics": [[PAYMENT_SETTLED, FUNDED, DEFUNDED]]}])
    for lg in logs:
        topics = lg["topics"]
        data = bytes.fromhex(lg["data"][2:])
        if topics[0] == PAYMENT_SETTLED:
            currency = data[:3]
            for t in topics[2:4]:
                accounts.add((to_checksum_address("0x" + t[-40:]), currency))
        else:
            accounts.add((to_checksum_address("0x" + topics[1][-40:]), bytes.fromhex(topics[2][2:])[:3]))
    sums: dict[bytes, int] = {}
    for participant, currency in accounts:
        sums[currency] = sums.get(currency, 0) + _call_uint(
            chain, deployment.ledger, encode_call("balanceOf(address,bytes3)", ["address", "bytes3"],
                                                  [participant, currency]))
    return {c.decode(): (total, _call_uint(chain, deployment.ledger,
                                           encode_call("totalSupply(bytes3)", ["bytes3"], [c])))
            for c, total in sums.items()}


def assert_money_conserved(chain: Chain, deployment: Deployment) -> Mapping[str, tuple[int, int]]:
    figures = money_invariant(chain, deployment)
    assert figures, "no money on the ledger at all"
    for currency, (total, supply) in figures.items():
        assert total == supply, f"{currency}: sum of balances {total} != totalSupply {supply}"
    return figures


def wait_reconciled(gateway: GatewayProcess, key: str, timeout: float = 60.0) -> dict[str, Any]:
    """GET /v1/audit/reconciliation until its differences are empty (the mirror may lag)."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    with gateway.client(key) as c:
        while time.monotonic() < deadline:
            r = c.get("/v1/audit/reconciliation")
            if r.status_code == 200:
                body = r.json()
                if not body["differences"]:
                    return body
            time.sleep(0.5)
    raise AssertionError(f"reconciliation not empty: {json.dumps(body)[:3000]}")


# ------------------------------------------------------------------------- client load
@dataclass(frozen=True)
class PaymentSpec:
    uetr: str
    debtor: str
    body: dict[str, Any]


def make_specs(n: int, *, seed: int = 8, queued_every: int = 0) -> list[PaymentSpec]:
    """`n` payments among the four demo banks in USD and EUR (small amounts: every one fits);
    every `queued_every`-th is far beyond any balance and asks to queue (it ends PDNG)."""
    import random

    rnd = random.Random(seed)
    specs = []
    for i in range(n):
        debtor = DEMO_BANKS[i % 4]
        creditor = rnd.choice([b for b in DEMO_BANKS if b != debtor])
        uetr = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        body: dict[str, Any] = {"uetr": uetr, "creditor_agent": creditor, "currency": rnd.choice(["USD", "EUR"]),
                                "amount": f"{rnd.randint(1, 50_000) / 100:.2f}", "end_to_end_id": f"E2E-{i:06d}",
                                "remittance_info": f"load {i}"}
        if queued_every and i % queued_every == queued_every - 1:
            body.update(amount="900000000.00", queue_if_insufficient=True)
        specs.append(PaymentSpec(uetr, debtor, body))
    return specs


@dataclass
class LoadResult:
    sent: int = 0  # payments for which at least one request went out
    requests: int = 0
    accepted: dict[str, int] = field(default_factory=dict)  # uetr -> first 2xx status
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)  # uetr -> 4xx
    retries: Counter[str] = field(default_factory=Counter)  # why requests were retried
    unanswered: list[str] = field(default_factory=list)  # gave up (time limit) without an answer


class PaymentLoad:
    """Worker threads posting `specs` over HTTP. A request that fails by connection error, a
    timeout, 503 or 429 is retried with the SAME body (same UETR): idempotency makes that
    safe. Every 2xx is recorded as accepted, every other 4xx as refused."""

    def __init__(self, url_of: Any, keys: Mapping[str, str], specs: list[PaymentSpec], *, workers: int = 8,
                 time_limit: float = 600.0, request_timeout: float = 15.0) -> None:
        import threading

        self.url_of = url_of  # callable: the gateway URL to use for a spec (several gateways possible)
        self.keys = keys
        self.specs = specs
        self.workers = workers
        self.time_limit = time_limit
        self.request_timeout = request_timeout
        self.result = LoadResult()
        self._next = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.stop_event = threading.Event()

    def start(self) -> PaymentLoad:
        import threading

        self._deadline = time.monotonic() + self.time_limit
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"load-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def join(self) -> LoadResult:
        for t in self._threads:
            t.join()
        return self.result

    @property
    def done(self) -> int:
        with self._lock:
            return len(self.result.accepted) + len(self.result.refused)

    def _take(self) -> PaymentSpec | None:
        with self._lock:
            if self._next >= len(self.specs):
                return None
            spec = self.specs[self._next]
            self._next += 1
            self.result.sent += 1
            return spec

    def _work(self) -> None:
        clients: dict[str, httpx.Client] = {}
        try:
            while not self.stop_event.is_set():
                spec = self._take()
                if spec is None:
                    return
                self._pay(spec, clients)
        finally:
            for c in clients.values():
                c.close()

    def _pay(self, spec: PaymentSpec, clients: dict[str, httpx.Client]) -> None:
        delay = 0.05
        while time.monotonic() < self._deadline and not self.stop_event.is_set():
            url = self.url_of(spec)
            client = clients.get(url + spec.debtor)
            if client is None:
                client = clients[url + spec.debtor] = httpx.Client(
                    base_url=url, timeout=self.request_timeout,
                    headers={"Authorization": f"Bearer {self.keys[spec.debtor]}"})
            why = None
            try:
                r = client.post("/v1/payments", json=spec.body)
            except httpx.TransportError as exc:
                why = type(exc).__name__
            else:
                with self._lock:
                    self.result.requests += 1
                if r.status_code < 300:
                    with self._lock:
                        self.result.accepted.setdefault(spec.uetr, r.status_code)
                    return
                if r.status_code in (429, 503):
                    why = str(r.status_code)
                else:
                    with self._lock:
                        self.result.refused[spec.uetr] = (r.status_code, r.text[:300])
                    return
            with self._lock:
                self.result.retries[why] += 1
            time.sleep(delay)
            delay = min(1.0, delay * 2)
        with self._lock:
            self.result.unanswered.append(spec.uetr)


FINAL_OR_QUEUED = frozenset({"ACSC", "PDNG", "CANC", "RJCT"})


def wait_all_final(gateway: GatewayProcess, key: str, uetrs: Iterable[str], *, timeout: float = 180.0,
                   settled: Iterable[str] = FINAL_OR_QUEUED) -> dict[str, str]:
    """Each UETR's tracker status once every one is in `settled` (or the last seen at `timeout`)."""
    pending = set(uetrs)
    statuses: dict[str, str] = {}
    allowed = set(settled)
    deadline = time.monotonic() + timeout
    with gateway.client(key) as c:
        while pending and time.monotonic() < deadline:
            for uetr in sorted(pending):
                try:
                    r = c.get(f"/v1/payments/{uetr}")
                except httpx.TransportError:
                    break
                statuses[uetr] = r.json().get("status", f"HTTP {r.status_code}") if r.status_code == 200 \
                    else f"HTTP {r.status_code}"
                if statuses[uetr] in allowed:
                    pending.discard(uetr)
            if pending:
                time.sleep(0.5)
    return statuses
