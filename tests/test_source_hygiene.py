"""Source rules for the gateway and the API (STYLE.md): domain code raises only typed
``GatewayError``s (never a bare built-in exception, as web3.py's own test enforces), no
``assert`` does a runtime check (asserts vanish under ``python -O``), every function is
annotated, and the code that handles money never converts to float."""
from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULES = sorted(p for package in ("chain_gateway", "api") for p in (REPO / package).rglob("*.py")
                 if "migrations" not in p.parts)
BUILTIN_EXCEPTIONS = {name for name in dir(builtins) if isinstance(getattr(builtins, name), type)
                      and issubclass(getattr(builtins, name), BaseException)} - {"SystemExit"}  # exit codes


def _ids(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("path", MODULES, ids=_ids)
def test_no_builtin_exception_is_raised(path: Path) -> None:
    bad = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id in BUILTIN_EXCEPTIONS:
                bad.append((node.lineno, target.id))
    assert bad == [], f"{_ids(path)} raises built-in exceptions: {bad}"


@pytest.mark.parametrize("path", MODULES, ids=_ids)
def test_no_assert(path: Path) -> None:
    asserts = [n.lineno for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.Assert)]
    assert asserts == [], f"{_ids(path)} uses assert at lines {asserts}"


@pytest.mark.parametrize("path", MODULES, ids=_ids)
def test_every_function_is_annotated(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args.args + node.args.kwonlyargs + node.args.posonlyargs
            missing = [a.arg for a in arguments if a.annotation is None and a.arg not in ("self", "cls")]
            assert node.returns is not None and not missing, f"{_ids(path)}:{node.lineno} {node.name}"


MONEY = [p for p in MODULES if p.parent.name in ("instructions", "risk", "mirror", "outbox", "fx")
         or (p.parent.name == "chain_gateway" and p.name in (
             "payments.py", "tracker.py", "ledger.py", "onboarding.py", "signing.py", "reconcile.py",
             "queue.py", "audit_trail.py"))]


@pytest.mark.parametrize("path", MONEY, ids=_ids)
def test_money_code_never_converts_to_float(path: Path) -> None:
    calls = [n.lineno for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "float"]
    assert calls == [], f"{_ids(path)} calls float() at lines {calls}"


def test_the_rules_see_the_code() -> None:
    assert len(MODULES) > 40 and len(MONEY) > 20
