"""dvc.yaml's deps cover every kddad module a stage's driver runs, so `dvc repro` cannot go stale.

Each driver's kddad imports are followed transitively through the AST: ``import`` and
``from … import`` anywhere in a module (inside functions too: lazy imports run as well), except
in a package's PEP 562 ``__getattr__``, whose imports run only when that attribute is read
(``kddad.Detector``); a test below makes sure no kddad module reads one. The model kinds'
modules, named by strings (``implementation = "kddad.models.pca:PCA"`` in the config schema), are
imported by :func:`kddad.models.base.model_class`: they count as imports of ``models/base.py``.
"""

import ast
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

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


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _covered(file: Path, deps: list[str]) -> bool:
    rel = file.relative_to(ROOT)
    return any(rel == Path(d) or Path(d) in rel.parents for d in deps)


@pytest.mark.parametrize("stage", list(_stages()))
def test_stage_deps_cover_every_module_its_driver_imports(stage):
    spec = _stages()[stage]
    driver = ROOT / spec["cmd"].split()[-1]
    assert str(driver.relative_to(ROOT)) in spec["deps"], f"{stage}: its driver is not a dependency"
    files = kddad_files(driver)
    assert files, f"{stage}: found no kddad import in {driver}"
    missing = sorted(str(f.relative_to(ROOT)) for f in files if not _covered(f, spec["deps"]))
    assert not missing, f"dvc.yaml stage {stage!r}: deps miss modules its driver imports: {missing}"


def test_data_stages_depend_on_no_model_code():
    for stage in ("download", "split", "encode"):
        deps = _stages()[stage]["deps"]
        model_code = [d for d in deps if d.startswith(("src/kddad/models", "src/kddad/detector", "src/kddad/tracking"))]
        assert not model_code, f"{stage} depends on model code: {model_code}"
        files = {f.relative_to(SRC).as_posix() for f in kddad_files(ROOT / _stages()[stage]["cmd"].split()[-1])}
        assert not files & {"kddad/detector.py", "kddad/tracking.py", "kddad/models/lightning.py"}


def test_no_kddad_module_reads_a_lazy_package_export():
    """The walker skips __getattr__ bodies; that is right only while no module uses those names."""
    for init in SRC.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        lazy = {
            c.comparators[0].value
            for f in tree.body
            if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
            for c in ast.walk(f)
            if isinstance(c, ast.Compare) and isinstance(c.comparators[0], ast.Constant)
        }
        package = ".".join(init.relative_to(SRC).parent.parts)
        for module in SRC.rglob("*.py"):
            for node in ast.walk(ast.parse(module.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module == package and not node.level:
                    used = {a.name for a in node.names} & lazy
                    assert not used, f"{module}: imports {used} from {package} lazily; list it in dvc.yaml"


def test_the_walker_follows_imports_inside_functions_and_packages():
    # kddad.sweep imports kddad.stages.chain only inside a function; chain imports the stages
    files = {f.relative_to(SRC).as_posix() for f in kddad_files(SRC / "kddad" / "sweep.py")}
    assert {
        "kddad/stages/chain.py",
        "kddad/stages/__init__.py",
        "kddad/stages/data.py",
        "kddad/__init__.py",
        "kddad/data/__init__.py",
    } <= files
    # the model kinds, imported by name from their config's `implementation`
    files = {f.relative_to(SRC).as_posix() for f in kddad_files(ROOT / "pipelines" / "train.py")}
    assert {
        "kddad/models/autoencoder.py",
        "kddad/models/pca.py",
        "kddad/models/iforest.py",
        "kddad/models/estimator.py",
        "kddad/models/base.py",
    } <= files
