"""Source rules for chain_gateway.lsm: typed GatewayErrors only, no asserts, annotated functions."""
from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

import chain_gateway.lsm as package

MODULES = sorted(Path(package.__file__).parent.glob("*.py"))
BUILTIN_EXCEPTIONS = {
    name
    for name in dir(builtins)
    if isinstance(getattr(builtins, name), type) and issubclass(getattr(builtins, name), BaseException)
}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_lsm_sources_raise_no_builtin_exception_and_assert_nothing(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    raised = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id in BUILTIN_EXCEPTIONS:
                raised.append((node.lineno, target.id))
    asserts = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    assert (raised, asserts) == ([], []), path.name


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_lsm_functions_are_annotated(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args.args + node.args.kwonlyargs + node.args.posonlyargs
            missing = [a.arg for a in arguments if a.annotation is None and a.arg not in ("self", "cls")]
            assert node.returns is not None and not missing, f"{path.name}:{node.lineno} {node.name}"
