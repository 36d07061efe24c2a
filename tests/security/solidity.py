"""Compile the security suite's test-only contracts (tests/security/contracts/) with the
project's own toolchain (native solc at the pin, else solcjs through the wrapper), cached in
build/ by source hash like the deployables."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from chain_gateway.config import PROJECT_ROOT
from chain_gateway.toolchain import _compiler, _standard_input, collect_sources

HERE = Path(__file__).resolve().parent / "contracts"


def compile_test_contracts() -> dict[str, dict[str, Any]]:
    """name -> {"abi", "bytecode"} for every contract in tests/security/contracts/."""
    sources = collect_sources(PROJECT_ROOT)
    for path in sorted(HERE.glob("*.sol")):
        sources[str(path.relative_to(PROJECT_ROOT))] = path.read_text()
    digest = hashlib.sha256(json.dumps(sources, sort_keys=True).encode()).hexdigest()
    cache = PROJECT_ROOT / "build" / "security-test-contracts.json"
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("digest") == digest:
            return dict(cached["contracts"])
    import solcx

    output = solcx.compile_standard(_standard_input(sources), solc_binary=_compiler(PROJECT_ROOT),
                                    base_path=str(PROJECT_ROOT), allow_paths=[str(PROJECT_ROOT)])
    contracts = {name: {"abi": data["abi"], "bytecode": "0x" + data["evm"]["bytecode"]["object"]}
                 for path, units in output["contracts"].items() if path.startswith("tests/security/")
                 for name, data in units.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"digest": digest, "contracts": contracts}))
    return contracts
