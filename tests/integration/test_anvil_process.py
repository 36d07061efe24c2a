"""The managed anvil keeps its past states in a folder of its own, bounded, and removes it
whichever way it ends (anvil's default folder, ~/.foundry/anvil/tmp, is never cleaned); with
a state file, the folder sits beside it and a start clears what a killed owner left."""
from __future__ import annotations

from pathlib import Path

import pytest

from chain_gateway.chain import ANVIL_PERSISTED_STATES, AnvilProcess, anvil_binary
from chain_gateway.config import PROJECT_ROOT

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
