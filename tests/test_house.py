"""House rules a reader of the code relies on: each fact in one place, no private API across modules.

Read from the source (ast), so a rule broken anywhere names the file and line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "kddad"
CODE = sorted([*SRC.rglob("*.py"), *(ROOT / "pipelines").glob("*.py"), *(ROOT / "bench").glob("*.py")])
TESTS = sorted((ROOT / "tests").rglob("*.py"))

#: What a stage reads or writes: folders and files that only kddad.paths may spell (prose may name them)
STAGE_PATH = re.compile(
    r"^(data|models|reports|outputs)/|/(data|models|reports|outputs)/|"
    r"(threshold|mlflow_run|metrics|mlflow_parent|meta)\.json$|(train_curve|alerts)\.csv$"
)


#: LightningOptimizer's private step callbacks (spelled so that a grep of the code finds no use)
LIGHTNING_STEP_HOOKS = tuple(f"_on_{when}_step" for when in ("before", "after"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring constants (prose may name the files; code may not)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def test_stage_paths_are_spelled_only_in_paths_py():
    bad = []
    for path in CODE:
        if path == SRC / "paths.py":
            continue
        tree = _tree(path)
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if not re.search(r"\s", node.value) and STAGE_PATH.search(node.value):
                    bad.append(f"{_where(path, node)}: {node.value!r}")
    assert not bad, "path literals outside kddad/paths.py (use Paths or its naming functions):\n" + "\n".join(bad)


def test_no_private_api_of_lightning_or_of_another_module():
    bad = []
    for path in CODE:
        tree = _tree(path)
        modules = set()  # names bound to imported modules of ours or of Lightning
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.split(".")[0] in ("kddad", "pytorch_lightning", "lightning")
            ):
                bad += [
                    f"{_where(path, node)}: imports {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
                modules.update(a.asname or a.name for a in node.names)
            elif isinstance(node, ast.Import):
                modules.update((a.asname or a.name).split(".")[0] for a in node.names)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in modules:
                    bad.append(f"{_where(path, node)}: {owner.id}.{node.attr}")
            if isinstance(node, ast.Attribute) and node.attr in LIGHTNING_STEP_HOOKS:
                bad.append(f"{_where(path, node)}: Lightning's private {node.attr}")
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


def test_mlflow_is_reached_only_through_tracking_and_the_model_flavour():
    allowed = {SRC / "tracking.py", SRC / "pyfunc.py", SRC / "pyfunc_model.py"}
    bad = []
    for path in (p for p in SRC.rglob("*.py") if p not in allowed):
        for node in ast.walk(_tree(path)):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad += [f"{_where(path, node)}: imports {n}" for n in names if n.split(".")[0] == "mlflow"]
    assert not bad, "MLflow used outside kddad.tracking (and the pyfunc flavour):\n" + "\n".join(bad)


@pytest.mark.parametrize("path", TESTS, ids=lambda p: str(p.relative_to(ROOT / "tests")))
def test_tests_import_helpers_not_conftest_or_other_tests(path):
    """Shared test code lives in tests/helpers; conftest.py holds fixtures only."""
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.module != "conftest", f"{_where(path, node)}: from conftest import (use helpers)"
            assert not node.module.startswith("test_"), f"{_where(path, node)}: imports another test module"
