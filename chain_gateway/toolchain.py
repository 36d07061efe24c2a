"""Compile ``contracts/`` with py-solc-x and cache the artifacts by source hash.

A native ``solc`` on PATH is used when its version matches the pin; otherwise the
npm package ``solc`` through ``solcjs_wrapper.js``. Artifacts are cached in
``build/artifacts.json`` keyed by the hash of every source file (ours and the
OpenZeppelin files we import) plus compiler settings, so an unchanged tree never calls
the compiler (py-solc-x runs ``--version`` on every compile, ~1 s with solcjs).
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain_gateway.config import PROJECT_ROOT
from chain_gateway.errors import ToolchainError

SOLC_VERSION = "0.8.37"
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200
REMAPPINGS = ["@openzeppelin/=node_modules/@openzeppelin/"]
DEPLOYABLES = ("ParticipantRegistry", "SettlementLedger", "FxSettlement")
EIP170_LIMIT = 24_576  # deployed code size every production chain (Besu included) enforces
_IMPORT = re.compile(r'^\s*import\s+(?:[^"\']*from\s+)?["\']([^"\']+)["\']', re.MULTILINE)


@dataclass(frozen=True)
class Artifact:
    """What the gateway needs of one compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    source_hash: str
    compiler_version: str


def _resolve(import_path: str, importer: str, root: Path) -> str:
    if import_path.startswith("."):
        return str(Path(importer).parent / import_path).replace("\\", "/")
    for prefix in REMAPPINGS:
        key, target = prefix.split("=", 1)
        if import_path.startswith(key):
            return target + import_path[len(key):]
    return import_path


def collect_sources(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Every Solidity file the build reads, by project-relative path, imports included."""
    pending = sorted(str(p.relative_to(root)) for p in (root / "contracts").rglob("*.sol"))
    sources: dict[str, str] = {}
    while pending:
        rel = pending.pop()
        if rel in sources:
            continue
        path = (root / rel).resolve()
        if not path.is_file():
            raise ToolchainError(f"Solidity import not found: {rel} (run `npm ci`?)")
        text = path.read_text()
        sources[rel] = text
        for imp in _IMPORT.findall(text):
            pending.append(_norm(_resolve(imp, rel, root)))
    return sources


def _norm(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def _source_hash(sources: dict[str, str]) -> str:
    h = hashlib.sha256()
    h.update(f"{SOLC_VERSION}|{EVM_VERSION}|{OPTIMIZER_RUNS}|{','.join(DEPLOYABLES)}".encode())
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    return h.hexdigest()


def _compiler(root: Path) -> Path:
    native = shutil.which("solc")
    if native:
        out = subprocess.run([native, "--version"], capture_output=True, text=True, check=False).stdout
        if f"Version: {SOLC_VERSION}" in out:
            return Path(native)
    wrapper = root / "chain_gateway" / "solcjs_wrapper.js"
    if not (root / "node_modules" / "solc").is_dir():
        raise ToolchainError("npm package `solc` is missing: run `npm ci` (make does it for you)")
    return wrapper


def _standard_input(sources: dict[str, str]) -> dict[str, Any]:
    ours = {k: {"content": v} for k, v in sources.items() if k.startswith("contracts/")}
    theirs = {k: {"content": v} for k, v in sources.items() if not k.startswith("contracts/")}
    return {
        "language": "Solidity",
        "sources": {**ours, **theirs},
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "remappings": REMAPPINGS,
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
        },
    }


def compile_contracts(root: Path = PROJECT_ROOT, *, force: bool = False) -> dict[str, Artifact]:
    """Compiled deployables by name, from the cache when the sources are unchanged."""
    sources = collect_sources(root)
    digest = _source_hash(sources)
    cache = root / "build" / "artifacts.json"
    if not force and cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("source_hash") == digest:
            return {name: Artifact(**a) for name, a in cached["artifacts"].items()}

    import solcx  # imported lazily: the cached path should not pay for it

    binary = _compiler(root)
    try:
        output = solcx.compile_standard(
            _standard_input(sources), solc_binary=binary, base_path=str(root), allow_paths=[str(root)]
        )
    except solcx.exceptions.SolcError as exc:
        raise ToolchainError("Solidity compilation failed: " + str(exc).split("> command")[0].strip()) from exc
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"Version: (\S+)", version)
    compiler_version = match.group(1) if match else SOLC_VERSION
    artifacts: dict[str, Artifact] = {}
    for path, contracts in output["contracts"].items():
        for name, data in contracts.items():
            if name in DEPLOYABLES and path.startswith("contracts/"):
                artifacts[name] = Artifact(
                    name=name,
                    abi=data["abi"],
                    bytecode="0x" + data["evm"]["bytecode"]["object"],
                    deployed_bytecode="0x" + data["evm"]["deployedBytecode"]["object"],
                    source_hash=digest,
                    compiler_version=compiler_version,
                )
    missing = set(DEPLOYABLES) - set(artifacts)
    if missing:
        raise ToolchainError(f"compiler output lacks {sorted(missing)}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"source_hash": digest, "artifacts": {n: a.__dict__ for n, a in artifacts.items()}}))
    tmp.replace(cache)
    return artifacts


def main() -> None:
    """`python -m chain_gateway.toolchain`: compile and print what was built."""
    for name, artifact in compile_contracts().items():
        runtime = len(artifact.deployed_bytecode) // 2 - 1
        print(f"{name}: {runtime} bytes deployed (EIP-170 limit {EIP170_LIMIT}), solc {artifact.compiler_version}")


if __name__ == "__main__":
    main()
