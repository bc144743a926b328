"""The kddad source files a stage driver imports, found through the AST (see tests/test_dvc_deps.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from helpers.repo import ROOT

SRC = ROOT / "src"
IMPLEMENTATION = re.compile(r"kddad(\.\w+)+:\w+")


def _module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path) -> set[str]:
    """Every module name an import statement in ``path`` may load (``from a import b``: a, a.b)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lazy_exports = {
        id(n) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "__getattr__" for n in ast.walk(f)
    }
    package = ".".join(path.relative_to(SRC).with_suffix("").parts[:-1]) if path.is_relative_to(SRC) else ""
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in lazy_exports:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .mod import x
                parts = package.split(".")
                if path.name != "__init__.py" or node.level > 1:
                    parts = parts[: len(parts) - node.level + (path.name == "__init__.py")]
                module = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
    return {n for n in names if n.split(".")[0] == "kddad"}


def _implementations() -> set[str]:
    """Modules named by ``"kddad.…:Class"`` strings anywhere in the package."""
    return {
        node.value.split(":")[0]
        for f in SRC.rglob("*.py")
        for node in ast.walk(ast.parse(f.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and IMPLEMENTATION.fullmatch(node.value)
    }


def kddad_files(driver: Path) -> set[Path]:
    """The kddad source files that running ``driver`` imports, directly or lazily, transitively."""
    seen: set[Path] = set()
    todo = [driver]
    while todo:
        path = todo.pop()
        names = _imported_names(path)
        if path == SRC / "kddad" / "models" / "base.py":
            names |= _implementations()
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__ too
                f = _module_file(".".join(parts[:i]))
                if f is not None and f not in seen:
                    seen.add(f)
                    todo.append(f)
    return seen
