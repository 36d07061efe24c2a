"""Gateway benchmarks over HTTP: a real gateway process (indexer, submitter, uvicorn) on a
fresh anvil, driven by N concurrent keep-alive clients.

    .venv/bin/python -m scripts.bench_gateway [--payments 2000] [--clients 1 8 32] [--profile]

What a client does: POST /v1/payments with an order its bank signed BEFORE the timed
window and ``Prefer: wait=30``; the gateway answers when the payment is final (ACSC in
the mirror), else the client polls GET /v1/payments/{uetr}. Latency is submit -> ACSC as
the client sees it. The gateway runs in its own process (``serve``), so the clients and
the gateway do not share an interpreter lock; anvil is a third process.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from chain_gateway.chain import _die_with_parent
from chain_gateway.config import DEV_KEYSTORE_PASSPHRASE, PROJECT_ROOT
from chain_gateway.ledger import LedgerClient
from scripts.bench_chain import Rig, _chunks, start_rig

PROFILE_DIR = PROJECT_ROOT / "test-artifacts" / "profiles"


# ------------------------------------------------------------------------ gateway process
@dataclass
class GatewayProc:
    """A gateway (indexer + submitter + API) serving in a child process."""

    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    api_keys: dict[str, str]  # BIC11 -> API key
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self, field_name: str = "VmHWM") -> float:
        """Peak (VmHWM) or current (VmRSS) resident set of the gateway process, MB."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def health(self) -> dict[str, Any]:
        return requests.get(self.url + "/healthz", timeout=10).json()  # type: ignore[no-any-return]

    def wait_mirror(self, block: int, timeout: float = 600.0) -> float:
        """Block until the gateway's mirror reached `block`; returns the seconds waited."""
        t0 = time.perf_counter()
        while True:
            h = self.health()
            if (h.get("mirror_block") or -1) >= block:
                return time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"mirror at {h.get('mirror_block')} not {block} after {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare_gateway_data(rig: Rig, data_dir: Path, *, database_url: str | None = None,
                         gateway_keys: bool = True) -> tuple[dict[str, str], str]:
    """The gateway's database (migrated), the banks' profiles and API keys, the deployment
    manifest, and (optionally) the banks' keys in its keystore. Returns (API keys, DB URL)."""
    from chain_gateway.access import ParticipantProfile, issue_key
    from chain_gateway.db import make_engine, make_session_factory
    from chain_gateway.keys import KeyStore
    from chain_gateway.mirror.schema import upgrade_database

    data_dir.mkdir(parents=True, exist_ok=True)
    rig.deployment.save(data_dir / "deployments" / "bench.json")
    url = database_url or f"sqlite:///{data_dir / 'mirror.sqlite3'}"
    upgrade_database(url)
    engine = make_engine(url)
    keys: dict[str, str] = {}
    with make_session_factory(engine)() as session:
        for bank, bic in zip(rig.banks, rig.bics, strict=True):
            session.add(ParticipantProfile(bic=bic, address=bank.address, name=f"Bench bank {bic}", country="US",
                                           roles="bank", key_custody="gateway" if gateway_keys else "self"))
        session.flush()
        for bic in rig.bics:
            keys[bic] = issue_key(session, owner_bic=bic, roles=["bank"], label="bench").api_key
        session.commit()
    engine.dispose()
    if gateway_keys:
        store = KeyStore(data_dir / "keystore", DEV_KEYSTORE_PASSPHRASE)
        for bank in rig.banks:
            store.add(bank)
    return keys, url


def launch_gateway(rig: Rig, data_dir: Path, *, database_url: str | None = None, profile: str | None = None,
                   env: dict[str, str] | None = None) -> GatewayProc:
    """Prepare the data folder, start ``serve`` in a child process, wait for /healthz."""
    keys, url = prepare_gateway_data(rig, data_dir, database_url=database_url)
    port = _free_port()
    config = {"rpc_url": rig.url, "data_dir": str(data_dir), "port": port, "database_url": url,
              "profile": profile}
    cfg = data_dir / "bench-gateway.json"
    cfg.write_text(json.dumps(config))
    log = data_dir / "gateway.log"
    proc = subprocess.Popen([sys.executable, "-m", "scripts.bench_gateway", "serve", str(cfg)], cwd=PROJECT_ROOT,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115 - the child owns it
                            env={**os.environ, **(env or {})}, preexec_fn=_die_with_parent)
    gw = GatewayProc(proc, port, data_dir, keys, log)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited at start-up; see {log}:\n{log.read_text()[-3000:]}")
        try:
            if gw.health().get("status") == "ok":
                return gw
        except (requests.RequestException, ValueError):
            pass
        if time.monotonic() > deadline:
            gw.stop()
            raise TimeoutError(f"gateway did not start within 120 s; see {log}")
        time.sleep(0.1)


def serve(config_path: str) -> int:
    """The child process: one Gateway (indexer + submitter threads) and uvicorn."""
    import logging

    import uvicorn

    from api.app import create_app
    from chain_gateway.config import get_settings
    from chain_gateway.runtime import Gateway

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = json.loads(Path(config_path).read_text())
    data = Path(cfg["data_dir"])
    settings = get_settings(environment="test", chain="rpc", rpc_url=cfg["rpc_url"], data_dir=data,
                            deployments_dir=data / "deployments", deployment_name="bench", port=cfg["port"],
                            database_url=cfg["database_url"], rate_limit_per_second=1e9, rate_limit_burst=10**9,
                            rpc_timeout_seconds=60.0)
    profilers = _start_profilers(cfg["profile"]) if cfg.get("profile") else None
    cpu = _ThreadCpu() if os.environ.get("BENCH_THREAD_CPU") else None
    gateway = Gateway(settings)
    timeline = _Timeline() if os.environ.get("BENCH_TIMELINE") else None
    gateway.start()
    if timeline is not None:
        timeline.install(gateway)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, gateway), host="127.0.0.1", port=cfg["port"],
                                           log_level="warning", lifespan="on", access_log=False))
    app = server.config.app
    try:
        server.run()
    finally:
        gateway.stop()
        if profilers is not None:
            profilers()
        if timeline is not None:
            timeline.report()
        if cpu is not None:
            st = gateway.submitter.stats
            groups = getattr(app.state, "intake_groups", None) or getattr(app.state, "last_intake_groups", None)
            cpu.extra = [f"submitter: {st.items} items in {st.transactions} transactions "
                         f"(mean {st.items / max(1, st.transactions):.1f}, largest {st.largest_batch})"]
            if groups is not None:
                cpu.extra.append(f"intake: {groups.payments} JSON payments in {groups.groups} group transactions "
                                 f"(mean {groups.payments / max(1, groups.groups):.1f})")
            cpu.report()
    return 0


class _Timeline:
    """Where a payment's time goes inside the gateway (BENCH_TIMELINE=1): per UETR, when intake
    committed it, when the submitter sent it, when its receipt was in, when the indexer's
    update named it; medians of the steps written at exit."""

    def __init__(self) -> None:
        self.t: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def mark(self, step: str, uetrs: Any) -> None:
        now = time.perf_counter()
        with self._lock:
            for u in uetrs:
                self.t.setdefault(u, {}).setdefault(step, now)

    def install(self, gateway: Any) -> None:
        from api import intake as intake_mod

        sub = gateway.submitter
        on_sent, on_mined = sub.on_sent, sub.on_mined

        def sent(uetrs: list[str], tx: str) -> None:
            self.mark("sent", uetrs)
            if on_sent:
                on_sent(uetrs, tx)

        def mined(uetrs: list[str], tx: str) -> None:
            self.mark("mined", uetrs)
            if on_mined:
                on_mined(uetrs, tx)
        sub.on_sent, sub.on_mined = sent, mined
        notify = gateway.changes.notify

        def notified(update: Any = None, *rest: Any) -> None:
            self.mark("indexed", getattr(update, "uetrs", ()) or ())
            notify(update, *rest)
        gateway.changes.notify = notified
        gateway.indexer.hooks = [notified if h == notify else h for h in gateway.indexer.hooks]
        answer = intake_mod.IntakeGroups._answer

        def answered(jobs: list[Any]) -> None:
            self.mark("committed", [j.result.uetr for j in jobs if j.result is not None])
            answer(jobs)
        intake_mod.IntakeGroups._answer = staticmethod(answered)  # type: ignore[method-assign]

    def report(self) -> None:
        steps = ["committed", "sent", "mined", "indexed"]
        lines = ["median ms between steps (payments with every step):"]
        full = [v for v in self.t.values() if all(k in v for k in steps)]
        for a, b in zip(steps, steps[1:]):
            d = [1000 * (v[b] - v[a]) for v in full]
            if d:
                lines.append(f"  {a:>9} -> {b:<9} p50 {statistics.median(d):7.1f}  p90 "
                             f"{statistics.quantiles(d, n=10)[-1]:7.1f}")
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
        (PROFILE_DIR / "timeline.txt").write_text("\n".join(lines) + "\n")


class _ThreadCpu:
    """CPU seconds per thread of this process (by Python thread name), from /proc: where a
    GIL-bound process spends its one core. Printed at exit (BENCH_THREAD_CPU=1)."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        threading.Thread(target=self._run, name="bench-cpu", daemon=True).start()

    def _run(self) -> None:
        self.seen: dict[int, float] = {}
        while not self._stop.wait(0.5):
            for t in threading.enumerate():
                if t.native_id is not None:
                    self.names[t.native_id] = t.name
                    self.seen[t.native_id] = self._cpu(t.native_id)

    @staticmethod
    def _cpu(tid: int) -> float:
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return 0.0

    def report(self) -> None:
        totals: Counter[str] = Counter()
        for tid in [int(t) for t in os.listdir("/proc/self/task")]:
            self.seen[tid] = max(self.seen.get(tid, 0.0), self._cpu(tid))
        for tid, sec in self.seen.items():
            name = self.names.get(tid, f"tid{tid}")
            key = "AnyIO worker" if name.startswith("AnyIO worker") else name
            totals[key] += sec
        whole = sum(totals.values())
        lines = [f"thread CPU seconds (total {whole:.1f}):"] + [f"  {sec:8.2f}  {name}"
                                                              for name, sec in totals.most_common(12)]
        lines += getattr(self, "extra", [])
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
        (PROFILE_DIR / "thread-cpu.txt").write_text("\n".join(lines) + "\n")


def _start_profilers(label: str):  # type: ignore[no-untyped-def]
    """pyinstrument on the main thread (event loop and async handlers) and on the submitter
    and indexer threads; the returned function stops them and writes
    test-artifacts/profiles/<label>-<thread>.{html,txt}."""
    from pyinstrument import Profiler

    from chain_gateway.indexer import core as indexer_core
    from chain_gateway.outbox import submitter as submitter_mod

    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    done: list[tuple[str, Profiler]] = []
    lock = threading.Lock()

    def wrap(name: str, fn):  # type: ignore[no-untyped-def]
        def run(*args, **kwargs):  # type: ignore[no-untyped-def]
            p = Profiler(interval=0.0005)
            p.start()
            try:
                return fn(*args, **kwargs)
            finally:
                p.stop()
                with lock:
                    done.append((name, p))
        return run

    submitter_mod.Submitter._run = wrap("submitter", submitter_mod.Submitter._run)  # type: ignore[method-assign]
    from api import intake as intake_mod

    intake_mod.IntakeGroups._run = wrap("intake", intake_mod.IntakeGroups._run)  # type: ignore[method-assign]
    indexer_core.Indexer.run_forever = wrap("indexer", indexer_core.Indexer.run_forever)  # type: ignore[method-assign]
    # anyio's worker threads run sync handlers and dependencies: profile them too
    import anyio.to_thread

    original = anyio.to_thread.run_sync

    async def profiled_run_sync(func, *args, **kwargs):  # type: ignore[no-untyped-def]
        return await original(_thread_profiled(func), *args, **kwargs)

    local = threading.local()
    workers: list[Profiler] = []

    def _thread_profiled(func):  # type: ignore[no-untyped-def]
        def call(*a):  # type: ignore[no-untyped-def]
            p = getattr(local, "p", None)
            if p is None:
                p = local.p = Profiler(interval=0.0005)
                with lock:
                    workers.append(p)
            p.start() if not p.is_running else None
            try:
                return func(*a)
            finally:
                p.stop()
                # resume accumulating next time: pyinstrument keeps the session across start/stop
        return call

    anyio.to_thread.run_sync = profiled_run_sync  # type: ignore[assignment]
    main = Profiler(interval=0.0005, async_mode="disabled")
    main.start()

    def finish() -> None:
        main.stop()
        items = [("main", main), *done] + [(f"worker{i}", p) for i, p in enumerate(workers)]
        for name, p in items:
            try:
                (PROFILE_DIR / f"{label}-{name}.html").write_text(p.output_html())
                (PROFILE_DIR / f"{label}-{name}.txt").write_text(p.output_text(unicode=False, color=False,
                                                                               show_all=False))
            except Exception as exc:  # noqa: BLE001 - a profile that cannot render is skipped
                print(f"profile {name}: {exc}", file=sys.stderr)
    return finish


# ------------------------------------------------------------------------------ payloads
@dataclass(frozen=True)
class Req:
    uetr: str
    body: bytes
    auth: bytes  # "Bearer <key>"


def build_requests(rig: Rig, keys: dict[str, str], n: int, *, clients: int, signed: bool = True,
                   debtors: Sequence[int] | None = None, start: int = 0) -> list[list[Req]]:
    """`n` payment bodies split over `clients` clients; client i pays from bank
    debtors[i % len(debtors)]. Signed ones carry the bank's signature over the order the
    gateway will build (same instruction hash, explicit deadline)."""
    from chain_gateway.instructions.request import instruction_from_request, parse_payment_request
    from chain_gateway.payments import Parties, build_order

    debtors = list(debtors if debtors is not None else range(len(rig.banks)))
    deadline = int(time.time()) + 3 * 3600
    deadline_text = dt.datetime.fromtimestamp(deadline, dt.UTC).isoformat().replace("+00:00", "Z")
    per_client: list[list[Req]] = [[] for _ in range(clients)]
    nb = len(rig.banks)
    for k in range(n):
        ci = k % clients
        d = debtors[ci % len(debtors)]
        c = (d + 1 + (start + k) % (nb - 1)) % nb
        uetr = str(uuid.uuid4())
        body: dict[str, Any] = {"uetr": uetr, "creditor_agent": rig.bics[c], "currency": "USD",
                                "amount": f"{1 + (start + k) % 97}.{(start + k) % 100:02d}",
                                "end_to_end_id": f"BENCH-{start + k}", "deadline": deadline_text}
        if signed:
            req = parse_payment_request(json.dumps(body))
            instruction = instruction_from_request(req, rig.bics[d])
            order = build_order(instruction, Parties(rig.banks[d].address, rig.banks[c].address), deadline)
            body["signature"] = "0x" + rig.signer.sign(bytes(rig.banks[d].key), order).hex()
        per_client[ci].append(Req(uetr, json.dumps(body).encode(), f"Bearer {keys[rig.bics[d]]}".encode()))
    return per_client


def _pacs008(msg_id: str, debtor_bic: str, txs: Sequence[tuple[str, str, str, str]]) -> bytes:
    """A pacs.008.001.08 of many transactions: (uetr, creditor BIC, amount, end-to-end id) each."""
    parts = []
    for uetr, creditor, amount, e2e in txs:
        parts.append(f"<CdtTrfTxInf><PmtId><EndToEndId>{e2e}</EndToEndId><UETR>{uetr}</UETR></PmtId>"
                     f'<IntrBkSttlmAmt Ccy="USD">{amount}</IntrBkSttlmAmt><ChrgBr>SHAR</ChrgBr>'
                     "<Dbtr><Nm>Bench debtor</Nm></Dbtr>"
                     f"<DbtrAgt><FinInstnId><BICFI>{debtor_bic}</BICFI></FinInstnId></DbtrAgt>"
                     f"<CdtrAgt><FinInstnId><BICFI>{creditor}</BICFI></FinInstnId></CdtrAgt>"
                     "<Cdtr><Nm>Bench creditor</Nm></Cdtr></CdtTrfTxInf>")
    ns = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return (f'<Document xmlns="{ns}"><FIToFICstmrCdtTrf><GrpHdr><MsgId>{msg_id}</MsgId>'
            f"<CreDtTm>{created}</CreDtTm><NbOfTxs>{len(txs)}</NbOfTxs>"
            "<SttlmInf><SttlmMtd>CLRG</SttlmMtd></SttlmInf></GrpHdr>"
            + "".join(parts) + "</FIToFICstmrCdtTrf></Document>").encode()


@dataclass(frozen=True)
class BulkReq:
    uetrs: tuple[str, ...]
    body: bytes
    auth: bytes


def build_bulk_requests(rig: Rig, keys: dict[str, str], n: int, *, clients: int, per_message: int = 100,
                        start: int = 0) -> list[list[BulkReq]]:
    """`n` payments as pacs.008 messages of `per_message` transactions, split over `clients`
    clients (client i's bank is the debtor of its messages; the gateway signs, as for any
    ISO message)."""
    per_client: list[list[BulkReq]] = [[] for _ in range(clients)]
    nb = len(rig.banks)
    k = 0
    m = 0
    while k < n:
        ci = m % clients
        d = ci % nb
        txs = []
        for _ in range(min(per_message, n - k)):
            c = (d + 1 + (start + k) % (nb - 1)) % nb
            txs.append((str(uuid.uuid4()), rig.bics[c], f"{1 + (start + k) % 97}.{(start + k) % 100:02d}",
                        f"BULK-{start + k}"))
            k += 1
        body = _pacs008(f"BULK{start + m:010d}", rig.bics[d], txs)
        per_client[ci].append(BulkReq(tuple(t[0] for t in txs), body, f"Bearer {keys[rig.bics[d]]}".encode()))
        m += 1
    return per_client


# ---------------------------------------------------------------------------- HTTP client
class Conn:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams (~20 us a request, so the
    load generator does not eat the gateway's CPU)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.r, self.w = await asyncio.open_connection(self.host, self.port, limit=2**22)

    async def request(self, method: bytes, path: bytes, headers: bytes, body: bytes = b"") -> tuple[int, bytes]:
        if self.w is None:
            await self.open()
        assert self.r is not None and self.w is not None
        self.w.write(b"%s %s HTTP/1.1\r\nHost: bench\r\n%sContent-Length: %d\r\n\r\n%s"
                     % (method, path, headers, len(body), body))
        head = await self.r.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked, close = None, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            data = b""
            while True:
                size = int((await self.r.readuntil(b"\r\n")).strip(), 16)
                data += await self.r.readexactly(size + 2)
                if size == 0:
                    break
            payload = data
        else:
            payload = await self.r.readexactly(length or 0)
        if close:
            self.w.close()
            self.r = self.w = None
        return status, payload

    def close(self) -> None:
        if self.w is not None:
            self.w.close()
        self.r = self.w = None


@dataclass
class LoadResult:
    clients: int
    payments: int
    seconds: float
    latencies: list[float]
    errors: Counter[str] = field(default_factory=Counter)
    polled: int = 0
    lag_blocks: list[int] = field(default_factory=list)
    lag_seconds: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.payments / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[max(0, min(998, int(q * 10) - 1))]


async def _drive(url: str, per_client: Sequence[Sequence[Req]], wait: int, timeout: float) -> LoadResult:
    host, port = url.removeprefix("http://").split(":")
    prefer = b"Prefer: wait=%d\r\n" % wait if wait else b""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    polled = 0

    async def client(reqs: Sequence[Req]) -> None:
        nonlocal polled
        conn = Conn(host, int(port))

        async def send(method: bytes, path: bytes, headers: bytes, body: bytes = b"") -> tuple[int, bytes]:
            nonlocal conn
            for attempt in range(5):  # a reset connection: requests are idempotent (UETR), send again
                try:
                    return await conn.request(method, path, headers, body)
                except (ConnectionError, asyncio.IncompleteReadError):
                    errors["connection reset (sent again)"] += 1
                    conn.close()
                    conn = Conn(host, int(port))
                    await asyncio.sleep(0.05 * (attempt + 1))
            return 0, b"connection reset 5 times"

        try:
            for req in reqs:
                t0 = time.perf_counter()
                headers = b"Authorization: %s\r\nContent-Type: application/json\r\n%s" % (req.auth, prefer)
                status, body = await send(b"POST", b"/v1/payments", headers, req.body)
                if status not in (200, 201, 202):
                    errors[f"HTTP {status}: {body[:160].decode(errors='replace')}"] += 1
                    continue
                state = json.loads(body).get("status")
                path = b"/v1/payments/" + req.uetr.encode()
                deadline = time.perf_counter() + timeout
                while state not in ("ACSC", "RJCT", "CANC") and time.perf_counter() < deadline:
                    polled += 1
                    await asyncio.sleep(0.002)
                    status, body = await send(b"GET", path, b"Authorization: %s\r\n" % req.auth)
                    state = json.loads(body).get("status") if status == 200 else None
                if state != "ACSC":
                    errors[f"final status {state}"] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
        finally:
            conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(r) for r in per_client))
    seconds = time.perf_counter() - start
    return LoadResult(len(per_client), len(latencies), seconds, latencies, errors, polled)


async def _drive_bulk(url: str, per_client: Sequence[Sequence[BulkReq]], timeout: float) -> LoadResult:
    """Each client POSTs its messages one after the other; after each, it polls the tracker of
    every transaction until all are final (latency: the POST's start to the ACSC seen)."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    polled = 0

    async def client(reqs: Sequence[BulkReq]) -> None:
        nonlocal polled
        conn = Conn(host, int(port))
        try:
            for req in reqs:
                t0 = time.perf_counter()
                headers = b"Authorization: %s\r\nContent-Type: application/xml\r\nAccept: application/json\r\n" % req.auth
                status, body = await conn.request(b"POST", b"/v1/payments", headers, req.body)
                if status != 202:
                    errors[f"HTTP {status}: {body[:160].decode(errors='replace')}"] += 1
                    continue
                states = {i["uetr"]: i.get("status") for i in json.loads(body)["items"]}
                pending: deque[str] = deque()
                for u in req.uetrs:
                    state = states.get(u)
                    if state == "ACSC":
                        latencies.append(time.perf_counter() - t0)
                    elif state in ("RJCT", "CANC"):
                        errors[f"final status {state}"] += 1
                    else:
                        pending.append(u)
                deadline = time.perf_counter() + timeout
                while pending and time.perf_counter() < deadline:  # one at a time, in order
                    polled += 1
                    status, body = await conn.request(b"GET", b"/v1/payments/" + pending[0].encode(),
                                                      b"Authorization: %s\r\n" % req.auth)
                    state = json.loads(body).get("status") if status == 200 else None
                    if state == "ACSC":
                        latencies.append(time.perf_counter() - t0)
                        pending.popleft()
                    elif state in ("RJCT", "CANC"):
                        errors[f"final status {state}"] += 1
                        pending.popleft()
                    else:
                        await asyncio.sleep(0.02)
                errors["not final in time"] += len(pending)
        finally:
            conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(r) for r in per_client))
    seconds = time.perf_counter() - start
    return LoadResult(len(per_client), len(latencies), seconds, latencies, errors, polled)


class LagSampler:
    """Samples chain head and the mirror's block every `interval` seconds (mirror lag)."""

    def __init__(self, rig: Rig, gw: GatewayProc, interval: float = 0.2) -> None:
        self.rig, self.gw, self.interval = rig, gw, interval
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from scripts.bench_chain import Rpc

        rpc = Rpc(self.rig.url)
        http = requests.Session()
        while not self._stop.is_set():
            try:
                head = int(rpc.call("eth_blockNumber"), 16)
                mirror = http.get(self.gw.url + "/healthz", timeout=10).json().get("mirror_block") or 0
                self.samples.append((time.perf_counter(), head, int(mirror)))
            except (requests.RequestException, ValueError):
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def lags(self) -> tuple[list[int], list[float]]:
        first_seen: dict[int, float] = {}
        last_head = None
        for t, head, _ in self.samples:
            if last_head is None:
                last_head = head
            for b in range(last_head + 1, head + 1):
                first_seen.setdefault(b, t)
            last_head = max(last_head, head)
        blocks = [max(0, h - m) for _, h, m in self.samples]
        seconds = [t - first_seen[m + 1] if h > m and (m + 1) in first_seen else 0.0 for t, h, m in self.samples]
        return blocks, seconds


def run_load(gw: GatewayProc, per_client: Sequence[Sequence[Req]], *, wait: int = 30, timeout: float = 60.0,
             rig: Rig | None = None) -> LoadResult:
    """Drive the gateway with one keep-alive connection per client; optionally sample mirror lag."""
    if rig is None:
        return asyncio.run(_drive(gw.url, per_client, wait, timeout))
    with LagSampler(rig, gw) as sampler:
        result = asyncio.run(_drive(gw.url, per_client, wait, timeout))
    result.lag_blocks, result.lag_seconds = sampler.lags()
    return result


def run_bulk(gw: GatewayProc, per_client: Sequence[Sequence[BulkReq]], *, timeout: float = 120.0) -> LoadResult:
    """Drive the gateway with pacs.008 messages of many transactions (``build_bulk_requests``)."""
    return asyncio.run(_drive_bulk(gw.url, per_client, timeout))


# ------------------------------------------------------------------------ preloading
def preload(rig: Rig, n: int, *, pivot: int | None = 0, batch: int = 100, per_request: int = 2) -> int:
    """Settle `n` bank-signed payments straight through settleBatch (the bench's own relayer,
    not the gateway's), to build a large ledger quickly. With `pivot`, bank `pivot` is party
    to every payment (its statement gets n movements). Returns the last block."""
    relayer = rig.relayers[-1]
    nb = len(rig.banks)
    orders = []
    for k in range(n):
        other = 1 + k % (nb - 1) if pivot is not None else (k * 7 + 1) % nb
        d, c = ((pivot, other) if k % 2 == 0 else (other, pivot)) if pivot is not None else (k % nb, other)
        if d == c:
            c = (c + 1) % nb
        o = rig.order(rig.banks[d], rig.banks[c], 1 + k % 50)
        orders.append((o, rig.signer.sign(bytes(rig.banks[d].key), o)))
    raws = []
    for chunk in _chunks(orders, batch):
        data = LedgerClient.encode_batch([o for o, _ in chunk], [s for _, s in chunk])
        raws.append(rig.sign_tx(relayer, rig.ledger, data, LedgerClient.batch_gas(len(chunk))))
    hashes = rig.send_mined(raws, per_request) if raws else []
    last = rig.rpc.wait_receipt(hashes[-1]) if hashes else None
    return int(last["blockNumber"], 16) if last else int(rig.rpc.call("eth_blockNumber"), 16)


def raw_chain_per_payment(rig: Rig, n: int, *, batch: int = 32, start: int = 0) -> float:
    """The chain's own per-payment time at the ledger's current size, without the gateway:
    `n` bank-signed payments (the scale phase's debtors and amounts) in settleBatch
    transactions of `batch` (the gateway's submitter under the 32-client load sends batches of
    at most this size), one transaction a block, each block sealed by ``evm_mine`` before the
    next transaction is sent (automine off meanwhile: no receipt polling in the timed part).
    Orders and transactions are signed first. Returns the median block's time divided by
    `batch`, in milliseconds: the median, as other work on the machine comes and goes."""
    relayer = rig.relayers[-1]
    nb = len(rig.banks)
    orders = []
    for k in range(n):
        d = 1 + k % (nb - 1)
        c = (d + 1 + (start + k) % (nb - 1)) % nb
        o = rig.order(rig.banks[d], rig.banks[c], 100 + (start + k) % 9700)
        orders.append((o, rig.signer.sign(bytes(rig.banks[d].key), o)))
    chunks = _chunks(orders, batch)
    raws = [rig.sign_tx(relayer, rig.ledger, LedgerClient.encode_batch([o for o, _ in chunk], [s for _, s in chunk]),
                        LedgerClient.batch_gas(len(chunk))) for chunk in chunks]
    blocks: list[float] = []
    hashes: list[str] = []
    rig.rpc.call("evm_setAutomine", [False])
    try:
        for raw in raws:
            t0 = time.perf_counter()
            hashes += rig.rpc.send_raw([raw])
            rig.rpc.call("evm_mine")
            blocks.append(time.perf_counter() - t0)
    finally:
        rig.rpc.call("evm_setAutomine", [True])
    failed = [r["transactionHash"] for r in rig.rpc.receipts(hashes) if int(r["status"], 16) != 1]
    if failed:
        raise RuntimeError(f"{len(failed)} raw settleBatch transactions failed, first {failed[0]}")
    full = [t for t, chunk in zip(blocks, chunks, strict=True) if len(chunk) == batch] or blocks
    return statistics.median(full) / batch * 1000


def statement_p95(gw: GatewayProc, rig: Rig, bank: int, *, samples: int = 200) -> tuple[float, float, int]:
    """GET /v1/accounts/{bic}/statement for a bank: first page, a late page (by `since`) and
    a cursor page, `samples` requests in all. Returns (p50 ms, p95 ms, lines in the first page)."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {gw.api_keys[rig.bics[bank]]}"
    bic = rig.bics[bank]
    first = http.get(f"{gw.url}/v1/accounts/{bic}/statement", params={"currency": "USD", "limit": 100}, timeout=60)
    first.raise_for_status()
    cursor = first.json().get("next_cursor")
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)).isoformat()
    times: list[float] = []
    for i in range(samples):
        params: dict[str, Any] = {"currency": "USD", "limit": 100}
        if i % 3 == 1:
            params["since"] = since
        elif i % 3 == 2 and cursor:
            params["cursor"] = cursor
        t0 = time.perf_counter()
        r = http.get(f"{gw.url}/v1/accounts/{bic}/statement", params=params, timeout=60)
        times.append(time.perf_counter() - t0)
        r.raise_for_status()
    return percentile(times, 50) * 1000, percentile(times, 95) * 1000, len(first.json()["items"])


# ----------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        return serve(argv[1])
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 8, 32])
    parser.add_argument("--gateway-signs", action="store_true", help="send unsigned orders: the gateway signs")
    parser.add_argument("--profile", metavar="LABEL", help="pyinstrument the gateway; test-artifacts/profiles/LABEL-*")
    parser.add_argument("--bulk", type=int, default=0, metavar="N",
                        help="also: 32 clients POSTing pacs.008 messages of N transactions each (0: not run)")
    args = parser.parse_args(argv)
    rig = start_rig(32)
    with tempfile.TemporaryDirectory(prefix="bench-gw-") as tmp:
        gw = launch_gateway(rig, Path(tmp), profile=args.profile)
        try:
            for clients in args.clients:
                n = args.payments if clients > 1 else min(args.payments, 200)
                reqs = build_requests(rig, gw.api_keys, n, clients=clients, signed=not args.gateway_signs)
                res = run_load(gw, reqs, rig=rig)
                print(f"{clients:>2} clients: {res.payments} ACSC in {res.seconds:.2f} s = {res.rate:,.0f}/s; "
                      f"p50 {res.pct(50):.1f} ms p95 {res.pct(95):.1f} ms p99 {res.pct(99):.1f} ms; "
                      f"lag p95 {percentile(res.lag_blocks, 95) if res.lag_blocks else 0:.0f} blocks; "
                      f"polled {res.polled}; errors {dict(res.errors)}")
            if args.bulk:
                reqs_bulk = build_bulk_requests(rig, gw.api_keys, args.payments, clients=32, per_message=args.bulk)
                res = run_bulk(gw, reqs_bulk)
                print(f"32 clients x pacs.008 of {args.bulk}: {res.payments} ACSC in {res.seconds:.2f} s = "
                      f"{res.rate:,.0f}/s; p50 {res.pct(50):.1f} ms p95 {res.pct(95):.1f} ms p99 {res.pct(99):.1f} ms; "
                      f"polled {res.polled}; errors {dict(res.errors)}")
            print(f"gateway peak RSS {gw.rss_mb():.0f} MB")
        finally:
            gw.stop()
            rig.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
