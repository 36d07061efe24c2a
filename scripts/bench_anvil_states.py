"""How anvil's past states grow on disk and in memory as a chain grows, per setting.

    .venv/bin/python scripts/bench_anvil_states.py [--blocks 3000] [--flags "--max-persisted-states 64"] ...

Each ``--flags`` string is one run on a fresh anvil (``""`` = anvil's defaults): blocks of 32
transfers to fresh addresses are mined one by one, and every fifth of the way it prints the
time to mine a block (mean of the last 50), the size of anvil's state folder (``--cache-path``,
a temporary folder removed afterwards) and anvil's resident memory. The figures behind
``chain_gateway.chain.ANVIL_PERSISTED_STATES``. Prints only; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chain_gateway.chain import _free_port, anvil_binary

TRANSFERS_PER_BLOCK = 32


def _rpc(url: str, body: Any) -> Any:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _call(url: str, method: str, params: list[Any]) -> Any:
    return _rpc(url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})["result"]


def _folder_mb(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) // 2**20


def _rss_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) // 1024


def run(blocks: int, flags: Sequence[str]) -> None:
    """One fresh anvil with ``flags``; prints a line every fifth of ``blocks``."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cache = Path(tempfile.mkdtemp(prefix="bench-anvil-states-"))
    node = subprocess.Popen([str(anvil_binary(REPO)), "--port", str(port), "--silent", "--gas-price", "0",
                             "--base-fee", "0", "--no-mining", "--cache-path", str(cache), *flags])
    try:
        for _ in range(200):
            try:
                sender = _call(url, "eth_accounts", [])[0]
                break
            except OSError:
                time.sleep(0.05)
        mined: list[float] = []
        for block in range(1, blocks + 1):
            first = (block - 1) * TRANSFERS_PER_BLOCK + 1
            _rpc(url, [{"jsonrpc": "2.0", "id": i, "method": "eth_sendTransaction",
                        "params": [{"from": sender, "to": "0x" + (first + i).to_bytes(20, "big").hex(),
                                    "value": "0x1", "gas": "0x5208"}]} for i in range(TRANSFERS_PER_BLOCK)])
            started = time.perf_counter()
            _call(url, "evm_mine", [])
            mined.append(time.perf_counter() - started)
            if block % max(1, blocks // 5) == 0:
                recent_ms = 1000 * sum(mined[-50:]) / len(mined[-50:])
                print(f"{' '.join(flags) or '(defaults)':<28} block {block:>6,}: mine {recent_ms:7.2f} ms"
                      f"  states on disk {_folder_mb(cache):>6,} MB  anvil RSS {_rss_mb(node.pid):>6,} MB", flush=True)
    finally:
        node.terminate()
        node.wait()
        shutil.rmtree(cache, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=3000)
    parser.add_argument("--flags", action="append", help='anvil flags for one run; repeat for more ("" = defaults)')
    args = parser.parse_args(argv)
    for flags in args.flags or ["", "--max-persisted-states 64"]:
        run(args.blocks, shlex.split(flags))


if __name__ == "__main__":
    main()
