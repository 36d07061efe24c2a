"""Source rules for the risk code: typed errors only, no floats near money, annotated
functions; and the migration creates exactly the tables the models declare."""
from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

import chain_gateway.audit_trail as audit_module
import chain_gateway.risk as risk_package
from chain_gateway.db import Base, make_engine
from chain_gateway.mirror.schema import downgrade_database, upgrade_database

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(Path(risk_package.__file__).parent.glob("*.py")) + [Path(audit_module.__file__),
                                                                     REPO / "api" / "routes" / "risk.py"]
BUILTIN_EXCEPTIONS = {name for name in dir(builtins) if isinstance(getattr(builtins, name), type)
                      and issubclass(getattr(builtins, name), BaseException)}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_builtin_exception_no_assert_no_float(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    raised = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id in BUILTIN_EXCEPTIONS:
                raised.append((node.lineno, target.id))
    asserts = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    floats = [n.lineno for n in ast.walk(tree) if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                                                    and n.func.id == "float")
              or (isinstance(n, ast.Constant) and isinstance(n.value, float))]
    assert (raised, asserts, floats) == ([], [], []), path.name


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_every_function_is_annotated(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.args + node.args.kwonlyargs + node.args.posonlyargs
            missing = [a.arg for a in args if a.annotation is None and a.arg not in ("self", "cls")]
            assert node.returns is not None and not missing, f"{path.name}:{node.lineno} {node.name}"


def test_migration_0003_matches_the_models_and_goes_both_ways(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
    upgrade_database(url)
    engine = make_engine(url)
    try:
        names = set(inspect(engine).get_table_names())
        assert {"risk_holds", "audit_trail"} <= names
        with engine.connect() as conn:
            triggers = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))}
            assert {"audit_trail_no_update", "audit_trail_no_delete"} <= triggers
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        ours = [d for d in diff if "risk_holds" in repr(d) or "audit_trail" in repr(d)]
        assert ours == []
        downgrade_database(url, "0002_gateway")
        assert not {"risk_holds", "audit_trail"} & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
