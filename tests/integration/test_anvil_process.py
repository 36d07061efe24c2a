"""The managed anvil keeps its past states in a folder of its own, bounded, and removes it
whichever way it ends (anvil's default folder, ~/.foundry/anvil/tmp, is never cleaned); with
a state file, the folder sits beside it and a start clears what a killed owner left."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from chain_gateway.chain import ANVIL_PERSISTED_STATES, AnvilProcess, anvil_binary
from chain_gateway.config import PROJECT_ROOT
from tests.reliability.harness import Chain, send_transfers_until

pytestmark = pytest.mark.anvil


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


@pytest.mark.parametrize("end", ["stop", "kill"])
def test_states_folder_is_private_bounded_and_removed(end: str) -> None:
    node = AnvilProcess(anvil_binary(PROJECT_ROOT), port=None, state_file=None, state_interval=1)
    assert node.pid is not None
    args = _cmdline(node.pid)
    folder = Path(args[args.index("--cache-path") + 1])
    assert folder.is_dir() and folder != Path.home() / ".foundry" / "anvil" / "tmp"
    assert args[args.index("--max-persisted-states") + 1] == str(ANVIL_PERSISTED_STATES)
    getattr(node, end)()
    assert not folder.exists()


def test_states_folder_beside_the_state_file_is_cleared_at_start(tmp_path: Path) -> None:
    state_file = tmp_path / "anvil-state.json"
    left = tmp_path / "anvil-state.past-states"
    left.mkdir()
    (left / "stale").write_bytes(b"x" * 1024)  # what an owner SIGKILLed before its clean-up leaves
    node = AnvilProcess(anvil_binary(PROJECT_ROOT), port=None, state_file=state_file, state_interval=1)
    try:
        assert node.pid is not None
        args = _cmdline(node.pid)
        assert Path(args[args.index("--cache-path") + 1]) == left
        assert not (left / "stale").exists()
    finally:
        node.stop()
    assert not left.exists() and state_file.is_file()


def test_stopped_while_mining_it_saves_a_whole_state(tmp_path: Path) -> None:
    """anvil's save on exit is not atomic: signalled while it mines, it may save a state ahead
    of its blocks (scripts/anvil_state_save.py --stop sigterm: 7 of 8). `stop` pauses mining
    first, so the restarted node holds every block it had and nothing more."""
    chain = Chain(tmp_path).start()
    senders = chain.rpc("eth_accounts")[:4]
    done = threading.Event()
    threads = [threading.Thread(target=send_transfers_until, args=(chain.url, s, senders[0], done)) for s in senders]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        before = chain.stop()
    finally:
        done.set()
        for t in threads:
            t.join()
    chain.start()
    try:
        assert before is not None and before > 50, before  # it was mining when stopped
        assert chain.head() == before
        chain.assert_whole(before)
    finally:
        chain.stop()
