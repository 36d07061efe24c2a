"""Connect to a chain behind one interface: in-process eth-tester, a managed local anvil,
or any JSON-RPC URL (Besu QBFT, geth, a developer's anvil).

The managed anvil runs on a free 127.0.0.1 port with its state persisted under the data
folder (``--state`` loads on start and saves on SIGTERM; ``--state-interval`` bounds what a
kill loses). It dies with its parent (PR_SET_PDEATHSIG), so neither tests nor Ctrl-C nor a
SIGKILLed gateway leave an orphan node behind. The states anvil writes to disk for
point-in-time reads go to a private folder, bounded and removed with the node (see
``ANVIL_PERSISTED_STATES``).
"""
from __future__ import annotations

import atexit
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.middleware import ExtraDataToPOAMiddleware
from web3.types import RPCEndpoint

from chain_gateway.config import Settings
from chain_gateway.errors import ChainUnavailable, ConfigurationError, ToolchainError

log = logging.getLogger(__name__)

# anvil's and Hardhat's well-known development mnemonic; eth-tester derives the same keys
# from it, so "dev account 0" is the same address on both local chains.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_HD_PATH = "m/44'/60'/0'/0"
ChainKind = Literal["eth-tester", "anvil", "rpc"]


def dev_accounts(count: int = 10) -> list[LocalAccount]:
    """The funded development accounts of eth-tester and anvil (never use on a real network)."""
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"{DEV_HD_PATH}/{i}") for i in range(count)]


@dataclass
class ChainHandle:
    """A connected chain; `close()` stops whatever this process started."""

    w3: Web3
    kind: ChainKind
    rpc_url: str | None
    dev_keys: list[LocalAccount] = field(default_factory=list)
    process: AnvilProcess | None = None

    @property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


ANVIL_PERSISTED_STATES = 64
"""How many past states a managed anvil may write to disk (``--max-persisted-states``), in a
folder of its own (``--cache-path``) that ``stop``/``kill`` remove.

Left to its defaults, anvil writes every state that leaves its in-memory window (about 500
blocks) to ``~/.foundry/anvil/tmp`` and never removes it: 3,000 blocks of 32 transfers left
30 GB there (``scripts/bench_anvil_states.py``), and the nodes the tests and benchmarks start
filled a CI disk. With this bound, point-in-time reads still reach the last several hundred
blocks (the in-memory window plus these), far more than the confirmation depth or a lagging
mirror's reconciliation needs; older blocks need an archive node."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def anvil_binary(project_root: Path) -> Path:
    """anvil from the npm package (its postinstall may be skipped, the binary is inside)."""
    for candidate in (
        project_root / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil",
        project_root / "node_modules" / "@foundry-rs" / "anvil-linux-arm64" / "bin" / "anvil",
    ):
        if candidate.is_file():
            return candidate
    raise ToolchainError("anvil not found under node_modules/@foundry-rs: run `npm ci` (make does it)")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class AnvilProcess:
    """A local anvil node owned by this process."""

    def __init__(self, binary: Path, *, port: int | None, state_file: Path | None, state_interval: int,
                 log_file: Path | None = None, block_time: float | None = None) -> None:
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._states = self._states_folder(state_file)
        self._saves_state = state_file is not None
        args = [str(binary), "--host", "127.0.0.1", "--port", str(self.port), "--gas-price", "0",
                "--base-fee", "0", "--gas-limit", "30000000", "--silent",
                "--cache-path", str(self._states), "--max-persisted-states", str(ANVIL_PERSISTED_STATES)]
        if state_file is not None:
            args += ["--state", str(state_file), "--state-interval", str(state_interval)]
        if block_time is not None:
            args += ["--block-time", str(block_time)]
        out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        atexit.register(self.stop)
        self._wait_ready()

    @staticmethod
    def _states_folder(state_file: Path | None) -> Path:
        """Beside the state file when there is one (past states do not outlive a restart, so a
        folder left by an owner that was SIGKILLed is emptied at the next start, and goes with
        the data folder); otherwise a temporary folder."""
        if state_file is None:
            return Path(tempfile.mkdtemp(prefix="anvil-states-"))
        folder = state_file.parent / f"{state_file.stem}.past-states"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        w3 = Web3(HTTPProvider(self.url, request_kwargs={"timeout": 2}))
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise ToolchainError(f"anvil exited at start-up (port {self.port})")
            try:
                w3.eth.block_number
                return
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.05)
        self.stop()
        raise ChainUnavailable(f"anvil did not answer on {self.url} within {timeout:.0f} s")

    def pause_mining(self, *, quiet: float = 0.3, timeout: float = 10.0) -> int:
        """Stop mining (``evm_setAutomine(false)``) and return the head once no block has been
        mined for `quiet` seconds: under load anvil goes on mining what its miner already holds
        for up to a second after the call returns. Transactions sent meanwhile wait in the pool."""
        w3 = Web3(HTTPProvider(self.url, request_kwargs={"timeout": 5}))
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [False])
        deadline = time.monotonic() + timeout
        head, since = int(w3.eth.block_number), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = int(w3.eth.block_number)
            if now != head:
                head, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return head
        raise ChainUnavailable(f"anvil on {self.url} kept mining {timeout:.0f} s after mining was paused")

    def stop(self, *, whole: bool = True) -> int | None:
        """Mining paused, SIGTERM (anvil saves its state), then SIGKILL if it lingers. Returns
        the head it stopped at when it paused mining first, None otherwise.

        anvil's save is not atomic (it reads the blocks, then the accounts, under separate
        locks), its save on exit included: stopped while it mines, it can save a state ahead
        of its blocks (``scripts/anvil_state_save.py --stop sigterm``). With mining paused
        first (`whole`), the save is whole; what was still in the pool is lost, as on any
        restart."""
        proc, self._proc = self._proc, None
        head: int | None = None
        if proc is not None and proc.poll() is None:
            if self._saves_state and whole:
                try:
                    head = self.pause_mining()
                except Exception:  # noqa: BLE001 - a node that does not answer is stopped all the same
                    log.warning("anvil on %s did not pause its mining before stopping", self.url)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self._states, ignore_errors=True)
        return head

    def kill(self) -> None:
        """SIGKILL, for crash tests: whatever the last state interval did not save is lost."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(self._states, ignore_errors=True)


def make_web3(url: str, timeout: float = 10.0) -> Web3:
    """A Web3 for a JSON-RPC URL, tolerant of QBFT's long extraData.

    web3's own retries are off: by default it tries an idempotent call five times with
    backoff, so one unreachable node held a request for about 5 x timeout + 2 s (7 s at a 1 s
    timeout) before anyone heard of it. The callers that should retry do so themselves (the
    submitter's ``with_retry``, the indexer's loop); a request handler answers 503 at once.

    ``eth_chainId`` is cached: web3's validation asks for it before every ``eth_call`` and
    transaction (one extra round trip each), and a node's chain id never changes.
    """
    provider = HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None,
                            cache_allowed_requests=True, cacheable_requests={RPCEndpoint("eth_chainId")})
    w3 = Web3(provider)
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def eth_tester_web3() -> Web3:
    """An in-process py-evm chain (cancun) with the development accounts funded."""
    from eth_tester import EthereumTester, PyEVMBackend

    backend = PyEVMBackend.from_mnemonic(DEV_MNEMONIC, num_accounts=10, hd_path=DEV_HD_PATH)
    return Web3(EthereumTesterProvider(EthereumTester(backend)))


def connect(settings: Settings, *, state_file: Path | None = None) -> ChainHandle:
    """Connect as the settings say; starts a managed anvil when `chain == "anvil"`."""
    if settings.chain == "eth-tester":
        return ChainHandle(w3=eth_tester_web3(), kind="eth-tester", rpc_url=None, dev_keys=dev_accounts())
    if settings.chain == "anvil":
        proc = AnvilProcess(
            anvil_binary(settings.project_root),
            port=settings.anvil_port,
            state_file=state_file if state_file is not None else settings.data_dir / "anvil-state.json",
            state_interval=settings.anvil_state_interval,
            log_file=settings.data_dir / "anvil.log",
        )
        return ChainHandle(w3=make_web3(proc.url, settings.rpc_timeout_seconds), kind="anvil", rpc_url=proc.url,
                           dev_keys=dev_accounts(), process=proc)
    if not settings.rpc_url:
        raise ConfigurationError("SETTLEMENT_RPC_URL is required when SETTLEMENT_CHAIN=rpc")
    w3 = make_web3(settings.rpc_url, settings.rpc_timeout_seconds)
    try:
        w3.eth.chain_id
    except Exception as exc:
        raise ChainUnavailable(f"cannot reach the chain at {settings.rpc_url}: {exc}") from exc
    keys = dev_accounts() if int(w3.eth.chain_id) == 31337 else []
    return ChainHandle(w3=w3, kind="rpc", rpc_url=settings.rpc_url, dev_keys=keys)
