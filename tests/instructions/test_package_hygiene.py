"""Source rules for chain_gateway.instructions: no floats, annotated, self-contained XSDs (typed errors
only and no assert: tests/test_source_hygiene.py, for the whole gateway)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import chain_gateway.instructions as package
from chain_gateway.instructions.schemas import load_schema, shipped_message_ids

from .conftest import CONFORMANCE

SOURCE = Path(package.__file__).parent
MODULES = sorted(SOURCE.glob("*.py"))
@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_assert_and_no_float_conversion(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    asserts = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    floats = [n.lineno for n in ast.walk(tree)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "float"]
    float_literals = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, float)]
    assert (asserts, floats, float_literals) == ([], [], []), path.name


def test_every_public_function_is_annotated() -> None:
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                arguments = node.args.args + node.args.kwonlyargs + node.args.posonlyargs
                unannotated = [a.arg for a in arguments if a.annotation is None and a.arg not in ("self", "cls")]
                assert node.returns is not None and not unannotated, f"{path.name}:{node.lineno} {node.name}"


def test_xsds_ship_inside_the_package_and_compile() -> None:
    xsd_dir = SOURCE / "xsd"
    assert {p.stem for p in xsd_dir.glob("*.xsd")} == set(shipped_message_ids())
    for message_id in shipped_message_ids():
        text = (xsd_dir / f"{message_id}.xsd").read_text(encoding="utf-8")
        assert "xs:import" not in text and "xs:include" not in text and "<!DOCTYPE" not in text
        load_schema(message_id)


def test_shipped_xsds_are_the_conformance_copies() -> None:
    shared = CONFORMANCE / "xsd"
    if not shared.is_dir():
        pytest.skip(f"conformance XSDs not found at {shared}")
    for message_id in shipped_message_ids():
        ours = (SOURCE / "xsd" / f"{message_id}.xsd").read_bytes()
        assert ours == (shared / f"{message_id}.xsd").read_bytes(), message_id
