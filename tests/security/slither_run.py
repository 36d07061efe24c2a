"""Run Slither over the project's contracts; executed by the Python of Slither's own venv
(``slither-analyzer`` pins web3 < 8, the gateway needs web3 8: they cannot share one).

    <slither venv>/bin/python tests/security/slither_run.py STANDARD_INPUT.json SOLC OUT.json

Slither cannot download a compiler here and solcjs has no ``--combined-json``, so it is fed
a solc *standard-JSON input* built by the project's own toolchain (``collect_sources`` /
``_standard_input``) through crytic-compile's ``solc-json`` platform, compiled by the same
compiler the project uses (native solc at the pin, or ``chain_gateway/solcjs_wrapper.js``).

Writes {"findings": [...every detector result...], "calls": [...every external call of our
contracts, with its target and whether it is a STATICCALL...]}.
"""
from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

from slither import Slither
from slither.detectors import all_detectors
from slither.detectors.abstract_detector import AbstractDetector
from slither.slithir.operations import HighLevelCall, LibraryCall, LowLevelCall

OURS = ("SettlementLedger", "ParticipantRegistry", "FxSettlement")


def main(standard_input: str, solc: str, out: str) -> None:
    root = str(Path(standard_input).resolve().parents[2])  # <root>/build/slither/input.json
    slither = Slither(standard_input, compile_force_framework="solc-json", solc=solc, solc_working_dir=root)
    for _, detector in inspect.getmembers(all_detectors, inspect.isclass):
        if issubclass(detector, AbstractDetector):
            slither.register_detector(detector)
    findings = []
    for results in slither.run_detectors():
        for r in results:
            elements = [{"type": e.get("type"), "name": e.get("name"),
                         "contract": (e.get("type_specific_fields") or {}).get("parent", {}).get("name"),
                         "file": (e.get("source_mapping") or {}).get("filename_relative")}
                        for e in r.get("elements", [])]
            findings.append({"check": r["check"], "impact": r["impact"], "confidence": r["confidence"],
                             "description": r["description"], "elements": elements})
    calls = []
    for contract in slither.contracts:
        if contract.name not in OURS:
            continue
        for function in contract.functions_and_modifiers:
            for node in function.nodes:
                for ir in node.irs:
                    if isinstance(ir, LowLevelCall):
                        calls.append({"contract": contract.name, "function": function.full_name, "kind": "low-level",
                                      "target": str(ir.destination), "called": ir.function_name, "static": False})
                    elif isinstance(ir, HighLevelCall) and not isinstance(ir, LibraryCall):
                        called = ir.function
                        calls.append({"contract": contract.name, "function": function.full_name, "kind": "high-level",
                                      "target": str(ir.destination.type), "called": getattr(called, "name", str(called)),
                                      "static": bool(ir.is_static_call())})
    Path(out).write_text(json.dumps({"findings": findings, "calls": calls}, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:4])
