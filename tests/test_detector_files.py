"""A saved detector folder is untrusted input: every key of detector.json and encoder.json is checked
at load, and a tampered file is refused in one line naming the file and the key."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.data import KDD10, write_head

from kddad import __version__, cli
from kddad.data import fields
from kddad.data.read import read_kdd
from kddad.detector import Detector, DetectorError
from kddad.features.encoder import FeatureEncoder

NUMERIC = ["duration", "src_bytes", "dst_bytes", "count", "srv_count", "serror_rate", "same_srv_rate"]
DATA = {
    "name": "kddcup99_10",
    "file": KDD10,
    "sha256": "8045aca0d84e70e622d1148d7df782496f6333bf6eb979a1b0837c42a9fd9561",
    "source": "https://kdd.ics.uci.edu/databases/kddcup99/kddcup.data_10_percent.gz",
    "split": "grouped",
    "split_seed": 0,
    "rows": 4000,
}


@pytest.fixture(scope="module")
def saved(mirror, tmp_path_factory):
    """A PCA detector (seconds to fit) with its encoder, fitted on the first normal rows of the real file."""
    tmp = tmp_path_factory.mktemp("detector")
    rows = read_kdd(write_head(mirror / KDD10, tmp / "head.gz", 20000))
    normal = rows[rows["label"] == "normal"].iloc[:5000]
    enc = FeatureEncoder(NUMERIC, list(fields.CATEGORICAL), log1p=True).fit(normal.iloc[:4000])
    det = Detector({"name": "pca", "n_components": 3}, {"name": "mse"}, encoder=enc, seed=0)
    det.fit(normal.iloc[:4000], normal.iloc[4000:])
    det.infer_threshold(rows.iloc[:3000], perc_outlier=5)
    det.data = dict(DATA)
    return det.save(tmp / "models" / "detector")


def _copy(saved: Path, dst: Path) -> Path:
    for file in saved.rglob("*"):
        if file.is_file():
            (dst / file.relative_to(saved)).parent.mkdir(parents=True, exist_ok=True)
            (dst / file.relative_to(saved)).write_bytes(file.read_bytes())
    return dst


def _edit(folder: Path, name: str, change) -> Path:
    file = folder / name
    meta = json.loads(file.read_text())
    change(meta)
    file.write_text(json.dumps(meta))
    return file


def test_a_saved_detector_loads_and_saves_the_same_description(saved, tmp_path):
    det = Detector.load(saved)
    assert det.data == DATA and det.threshold is not None and det.history
    det.save(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "detector.json").read_text()) == json.loads(
        (saved / "detector.json").read_text()
    )
    assert (tmp_path / "again" / "encoder" / "encoder.json").read_text() == (
        saved / "encoder" / "encoder.json"
    ).read_text()


def test_a_loaded_detector_describes_itself(saved):
    det = Detector.load(saved)
    about = det.describe()
    assert json.loads(json.dumps(about)) == about  # plain JSON values
    assert about["model"] == {"name": "pca", "n_components": 3, "whiten": False}
    assert about["architecture"] == "pca k3" and about["score"]["name"] == "mse"
    assert about["n_features"] == 25 and about["seed"] == 0 and about["kddad_version"] == __version__
    assert about["features"] == {
        "numeric": NUMERIC,
        "categorical": list(fields.CATEGORICAL),
        "scaling": "standard",
        "log1p": [c for c in NUMERIC if c in fields.log1p_columns(True)],  # the columns, as saved
        "encoded": 25,
    }
    assert about["training_data"] == DATA and about["epochs"] == len(det.history) > 0
    assert about["threshold"] == det.threshold and about["threshold_info"] == {
        "method": "percentile",
        "perc_outlier": 5,
        "rows": 3000,
    }
    assert Detector({"name": "pca"}).describe()["threshold_info"] is None  # unfitted: nothing recorded yet


def test_info_shows_the_description_then_the_metrics_beside_it(saved, tmp_path):
    folder = _copy(saved, tmp_path / "models" / "detector")
    info = cli.describe(folder)
    assert list(info) == [
        "detector",
        "model",
        "score",
        "features",
        "training_data",
        "epochs",
        "kddad_version",
        "threshold",
    ]
    assert info["detector"] == str(folder) and info == {
        "detector": str(folder),
        **{k: v for k, v in Detector.load(folder).describe().items() if k in info},
    }
    (tmp_path / "reports").mkdir()
    headline = {"f1": 0.5, "precision": 0.75, "recall": 0.25, "roc_auc": 0.875, "pr_auc": 0.625}
    (tmp_path / "reports" / "metrics.json").write_text(json.dumps({**headline, "rows": 7}))
    info = cli.describe(folder)
    assert info["metrics"] == headline  # the headline, not the rest
    assert info["metrics_from"] == str(tmp_path / "reports" / "metrics.json")


DET, ENC = "detector.json", "encoder/encoder.json"


def _at(meta, key, value):
    meta[key] = value


TAMPERS = {
    "unknown top-level key": (DET, lambda m: _at(m, "thresold", 1.0), "key 'thresold': unknown; expected one of"),
    "unknown key in data": (DET, lambda m: _at(m["data"], "fiel", "x"), "key 'data.fiel': unknown; expected one of"),
    "unknown key in threshold_info": (DET, lambda m: _at(m["threshold_info"], "how", 1), "key 'threshold_info.how'"),
    "unknown key in a history row": (DET, lambda m: _at(m["history"][0], "lr", 0.1), r"key 'history\[0\].lr'"),
    "bad key inside model": (
        DET,
        lambda m: _at(m["model"], "n_componets", 3),
        "key 'model.n_componets': unknown; expected one of name, n_components, whiten",
    ),
    "bad model value": (DET, lambda m: _at(m["model"], "n_components", -1), "key 'model.n_components'"),
    "unknown model kind": (DET, lambda m: _at(m["model"], "name", "svm"), "key 'model.name': expected one of ae"),
    "control characters in data.file": (
        DET,
        lambda m: _at(m["data"], "file", "x.csv\x1b[2J\nERROR fake"),
        r"key 'data.file': holds the control character '\\x1b'",
    ),
    "absurdly long data.source": (
        DET,
        lambda m: _at(m["data"], "source", "a" * 5000),
        "key 'data.source': expected at most",
    ),
    "short sha256": (DET, lambda m: _at(m["data"], "sha256", "abc"), "key 'data.sha256': expected 64 hexadecimal"),
    "negative rows": (DET, lambda m: _at(m["data"], "rows", -1), "key 'data.rows'"),
    "unknown split": (DET, lambda m: _at(m["data"], "split", "random"), "key 'data.split'"),
    "NaN threshold": (DET, lambda m: _at(m, "threshold", float("nan")), "key 'threshold': Input should be a finite"),
    "boolean threshold": (DET, lambda m: _at(m, "threshold", True), "key 'threshold'"),
    "string n_features": (DET, lambda m: _at(m, "n_features", "20"), "key 'n_features'"),
    "other format": (DET, lambda m: _at(m, "format", 2), "key 'format': this kddad reads format 1, got format 2"),
    "short feature_reference": (DET, lambda m: m["feature_reference"].pop(), "key 'feature_reference': expected"),
    "n_features not the encoder's": (
        DET,
        lambda m: m.update(n_features=5, feature_reference=m["feature_reference"][:5]),
        "key 'n_features': 5, but .*encoder.json encodes rows into 25 features",
    ),
    "scale 1e308": (
        ENC,
        lambda m: m["multiplier"].__setitem__(1, 1e308),
        r"key 'multiplier\[1\]' \(src_bytes\): expected a finite value in \(0, 1e12\], got 1e\+308",
    ),
    "negative scale": (ENC, lambda m: m["multiplier"].__setitem__(0, -2.0), r"key 'multiplier\[0\]' \(duration\)"),
    "NaN centre": (ENC, lambda m: m["offset"].__setitem__(3, float("nan")), r"key 'offset\[3\]' \(count\).*got nan"),
    "wrong length": (ENC, lambda m: m["offset"].pop(), "key 'offset': expected 7 values, one per numeric column"),
    "non-KDD column": (
        ENC,
        lambda m: m["numeric"].__setitem__(2, "dst_bytez"),
        r"key 'numeric\[2\]': not one of the 38 numeric KDD features \(did you mean 'dst_bytes'\?\)",
    ),
    "duplicate category": (
        ENC,
        lambda m: m["categories"]["protocol_type"].append(m["categories"]["protocol_type"][0]),
        "key 'categories.protocol_type': lists .* twice",
    ),
    "unknown encoder key": (ENC, lambda m: _at(m, "clip", 5), "key 'clip': unknown; expected one of format, numeric"),
}


@pytest.mark.parametrize("name", TAMPERS)
def test_a_tampered_file_is_refused_naming_the_file_and_the_key(saved, tmp_path, name):
    which, change, error = TAMPERS[name]
    folder = _copy(saved, tmp_path / "det")
    file = _edit(folder, which, change)
    with pytest.raises(DetectorError, match=error) as caught:
        Detector.load(folder)
    message = str(caught.value)
    assert message.startswith(f"{file}: ") and "\n" not in message and "\x1b" not in message


def test_a_duplicate_json_key_is_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path / "det")
    text = (folder / DET).read_text()
    (folder / DET).write_text(text.replace('"threshold":', '"threshold": 1e9, "threshold":', 1))
    with pytest.raises(DetectorError, match=r"detector.json: not a detector description .*'threshold' appears twice"):
        Detector.load(folder)


def test_save_refuses_what_load_would_refuse(saved, tmp_path):
    det = Detector.load(saved)
    det.data = {**DATA, "dataset": "mine"}
    with pytest.raises(DetectorError, match="cannot save this detector: key 'data.dataset': unknown"):
        det.save(tmp_path / "det")
    assert not (tmp_path / "det").exists()


def test_info_on_a_tampered_folder_exits_2_in_one_line(saved, tmp_path):
    folder = _copy(saved, tmp_path / "det")
    _edit(folder, DET, lambda m: _at(m["data"], "file", "\x1b]0;owned\x07x.csv"))
    proc = subprocess.run(
        [sys.executable, "-m", "kddad.cli", "info", "--model", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr and proc.stdout == ""
    assert "detector.json" in lines[0] and "key 'data.file'" in lines[0] and "\x1b" not in lines[0]


_OPENED: list[str] = []


def _audit(event, args):
    if event == "open" and args and "never-opened" in str(args[0]):
        _OPENED.append(str(args[0]))


def test_a_dotdot_path_in_data_is_shown_by_info_and_never_opened(saved, tmp_path, capsys):
    folder = _copy(saved, tmp_path / "models" / "detector")
    file, source = "../../never-opened/x.csv", "../never-opened/source.csv"
    _edit(folder, DET, lambda m: m["data"].update(file=file, source=source))
    sys.addaudithook(_audit)  # a hook stays for the process; it only records paths naming never-opened
    _OPENED.clear()
    assert Detector.load(folder).data["file"] == file
    cli.main(["info", "--model", str(folder)])
    shown = capsys.readouterr().out
    assert f"file={file}" in shown and f"source={source}" in shown
    assert _OPENED == []


def test_info_into_a_closed_pipe_ends_quietly(saved):
    """`kddad info | head -1`: the reader closes the pipe before the command writes (here: a reader
    that reads nothing); no traceback, exit 0."""
    cmd = f"{sys.executable} -m kddad.cli info --model {saved} | true"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
