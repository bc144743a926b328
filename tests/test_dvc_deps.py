"""dvc.yaml's deps cover every kddad module a stage's driver runs, so `dvc repro` cannot go stale.

Each driver's kddad imports are followed transitively through the AST: ``import`` and
``from … import`` anywhere in a module (inside functions too: lazy imports run as well), except
in a package's PEP 562 ``__getattr__``, whose imports run only when that attribute is read
(``kddad.Detector``); a test below makes sure no kddad module reads one. The model kinds'
modules, named by strings (``implementation = "kddad.models.pca:PCA"`` in the config schema), are
imported by :func:`kddad.models.base.model_class`: they count as imports of ``models/base.py``.
"""

import ast
from pathlib import Path

import pytest
import yaml
from helpers.imports import SRC, kddad_files
from helpers.repo import ROOT


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


@pytest.mark.parametrize("stage", ["download", "split", "encode"])
def test_data_stages_depend_on_no_model_code(stage):
    deps = _stages()[stage]["deps"]
    model_code = [d for d in deps if d.startswith(("src/kddad/models", "src/kddad/detector", "src/kddad/tracking"))]
    assert not model_code, f"{stage} depends on model code: {model_code}"
    files = {f.relative_to(SRC).as_posix() for f in kddad_files(ROOT / _stages()[stage]["cmd"].split()[-1])}
    assert not files & {"kddad/detector.py", "kddad/tracking.py", "kddad/models/training.py"}


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
