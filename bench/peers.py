"""Peer detectors from PyOD and DeepOD beside kddad's own, on the arrays the pipeline evaluates.

Every detector, peer or kddad, is fitted on the same training rows of one split (the data
stages' cached output for ``--split-overrides``; ``--peer-overrides`` changes the peers' encoding
alone, e.g. ``scaling=standard``, and a kddad row that encodes otherwise fits on its own arrays of
the same rows) and scored through the same view and metric
code as the evaluate stage (``kddad.evaluation``): a peer is wrapped in an adapter with kddad's
``score(X) -> (scores, None)``. The threshold is the pipeline's own rule for every detector: the
percentile ``100 - perc_outlier`` of the threshold batch's scores (with ``threshold.method=f1``
the cut with the batch's best F1, with ``fpr`` the quantile of the validation normals' scores);
F1 is at it.

Columns, mean ± std over ``--seeds`` (model initialisation and training; the split is fixed):

- ``pool macro AUC*``: the threshold batch's normals beside the threshold pool's attacks, data the
  test split never sees. The one column choices may be made on; every other is for the record.
- test ROC-AUC and F1; the held-out attacks beside the test normals (the evaluate stage's
  ``heldout_attacks`` view): macro and per-category ROC-AUC, DoS recall at 0.1% FPR ("—" where
  the split has no such category, e.g. ``split=dagmm``, whose outliers are normal traffic);
- fit seconds, and scoring rows/s over the test and held-out attack rows.

Peers run at their library defaults except the epochs (``EPOCHS``, ``--epochs NAME=N``), with
their seed from the seed loop, on ``--device`` (default cpu; PyOD's DeepSVDD and DeepOD's DIF
compute on the CPU whatever it says). They fit on the training rows only (kddad alone uses the
validation rows, for early stopping); their fit seconds include their own scoring of the training
rows, which PyOD's and DeepOD's ``fit`` does. kddad rows run on their own ``trainer.accelerator``.

Where a peer's defaults fail on these arrays, the adapter says why:

- PyOD's PCA keeps the components of the training rows' rank: at its default every score is inf
  (zero-variance components, see :func:`full_rank_pca`);
- DeepOD's DIF scores with the scalers of its training rows (DeepOD refits them on each scored
  batch, so a score depends on the rows scored with it);
- DeepOD's GOAD builds its 256 transforms a few thousand rows at a time (DeepOD stacks them for
  every row at once, in float64);
- DeepOD's SLAD, whose scores can go NaN, runs only when named (``--peers SLAD``); a detector
  with non-finite scores is named under the table, its metrics nan.

Peers score ``SCORE_CHUNK`` rows at a time (each row's score is its own: chunks change none).
Slow on the CPU, and so the bulk of a run: GOAD, ICL (DeepOD's ``n_ensemble='auto'`` trains 2
networks on 71 features, then scores twice with the last) and DIF (DeepOD scores each tree
row by row in Python); PyOD's networks score at their training batch size (32).

A ``--kddad`` row whose overrides change the data stages (features, scaling, split) is trained
and scored on its own arrays, marked in the notes under the table.

``--save FILE`` appends each finished (detector, seed) to a JSON-lines file, and takes from it
the ones already there for the same composed config (a kddad row), or the same data, threshold
rule, peer, epochs and device: a run of hours
resumes where it stopped, and more seeds add only the new ones. Each record names the machine it
ran on; rows with seeds from another run are noted under the table, since their fit seconds and
rows/s were measured then.

Usage: python bench/peers.py [--seeds 0 1 2] [--split-overrides "split=dagmm split.test_anomalies=all"]
                             [--peer-overrides "scaling=standard"]
                             [--peers NAME ...] [--kddad "NAME=OVERRIDES"]... [--epochs NAME=N ...]
                             [--device cpu] [--markdown] [--save runs.jsonl]
"""

# ruff: noqa: E402 (PyOD and DeepOD are imported once they are known to be installed)

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import random
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import torch
from _data import composed, prepared

from kddad.config import Config
from kddad.data.split import ATTACKS, THRESHOLD_ATTACKS
from kddad.errors import KddadError
from kddad.evaluation import category_metrics, detection_metrics
from kddad.evaluation.views import Scorer, View, beside, scored
from kddad.paths import Paths
from kddad.stages.data import load_split
from kddad.stages.model import load_features, train
from kddad.thresholds import best_f1_cut

INSTALL = "pip install -e '.[peers]' && pip install --no-deps deepod==0.4.1 (or make peers)"
if any(importlib.util.find_spec(m) is None for m in ("pyod", "deepod")):
    print(f"bench/peers.py needs PyOD and DeepOD: {INSTALL}", file=sys.stderr)
    sys.exit(2)

import pyod
from deepod.models.tabular import GOAD, ICL, RCA, SLAD, DeepIsolationForest, NeuTraL
from deepod.models.tabular import dif as deepod_dif
from deepod.models.tabular import goad as deepod_goad
from deepod.models.tabular import rca as deepod_rca
from pyod.models.auto_encoder import AutoEncoder
from pyod.models.deep_svdd import DeepSVDD
from pyod.models.iforest import IForest
from pyod.models.pca import PCA
from pyod.models.vae import VAE
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset
from tqdm import trange

#: Training epochs of the peers that train (their library defaults are 10 to 100); ``--epochs`` caps them
EPOCHS = {
    "AutoEncoder": 30,
    "VAE": 30,
    "DeepSVDD": 30,
    "NeuTraL": 30,
    "ICL": 5,
    "GOAD": 3,
    "RCA": 50,
    "SLAD": 10,
}
#: Rows a peer scores at a time: bounds the memory of peers that keep per-row representations
SCORE_CHUNK = 50_000
#: Rows GOAD transforms at a time (each row's 256 transforms are 64 KiB while in float64)
GOAD_TRANSFORM_ROWS = 4_096
CATEGORIES = ("dos", "probe", "r2l", "u2r")
KDDAD_DEFAULT = {"kddad default": []}


class TrainScaledDIF(DeepIsolationForest):
    """DeepOD's deep isolation forest, scaling each member's representation as on the training rows.

    DeepOD 0.4.1 fits a new StandardScaler on every batch it scores, so a row's score depends on
    the rows scored with it (the held-out attacks would be standardised on themselves). Here each
    member's scaler is the one its fit used: fitted on the training rows' representation.
    """

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> TrainScaledDIF:
        self.scalers_: list[StandardScaler] | None = None  # fitted on train at the first scoring: fit's own
        return super().fit(X, y)

    def _represent(self, net: torch.nn.Module, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(np.ascontiguousarray(X)).float()).numpy()

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        if self.scalers_ is None:
            self.scalers_ = [StandardScaler().fit(self._represent(net, self.train_data)) for net in self.net_lst]
        members = zip(self.net_lst, self.scalers_, self.iForest_lst)
        return np.mean(
            [
                deepod_dif.cal_score(np.tanh(ss.transform(self._represent(net, X))), forest)
                for net, ss, forest in members
            ],
            axis=0,
        )


class ChunkedGOAD(GOAD):
    """DeepOD's GOAD, its affine transforms built a few thousand rows at a time.

    DeepOD 0.4.1 stacks all ``n_trans`` transforms of every row in float64 before casting them to
    float32 (for training and again for each scoring), and recomputes the training rows'
    representation means at each scoring. Here the same float32 transforms are built in chunks
    of rows and the means once, after training: the same values in bounded memory.
    """

    def _transformed(self, X: np.ndarray) -> torch.Tensor:
        out = np.empty((len(X), self.trans_dim, self.n_trans), dtype=np.float32)
        for i in range(0, len(X), GOAD_TRANSFORM_ROWS):
            rows = X[i : i + GOAD_TRANSFORM_ROWS]
            out[i : i + len(rows)] = np.stack([rows.dot(rot) for rot in self.affine_weights], 2)
        return torch.from_numpy(out)

    def training_prepare(self, X: np.ndarray, y: np.ndarray | None) -> tuple:
        """DeepOD's training_prepare with the transforms of :meth:`_transformed`."""
        self.affine_weights = np.random.randn(self.n_trans, self.n_features, self.trans_dim)
        labels = torch.arange(self.n_trans).unsqueeze(0).expand((X.shape[0], self.n_trans)).long()
        loader = DataLoader(TensorDataset(self._transformed(X), labels), batch_size=self.batch_size, shuffle=True)
        net = deepod_goad.GoadNet(
            self.trans_dim,
            kernel_size=self.kernel_size,
            n_hidden=self.hidden_dim,
            n_layers=self.n_layers,
            n_output=self.n_trans,
            activation=self.act,
            bias=False,
        ).to(self.device)
        deepod_goad.weights_init(net)
        self.rep_means = None  # of this net: computed at the first scoring
        return loader, net, deepod_goad.GoadLoss(alpha=self.alpha, margin=self.margin, device=self.device)

    def inference_prepare(self, X: np.ndarray) -> DataLoader:
        """DeepOD's inference_prepare: the training rows' mean representation per transform (once)."""
        if self.rep_means is None:
            self.net.eval()
            total = torch.zeros((self.hidden_dim, self.n_trans)).to(self.device)
            with torch.no_grad():
                for batch, _ in self.train_loader:
                    total += self.net(batch.float().to(self.device))[0].mean(0)
            self.rep_means = (total.t() / len(self.train_loader)).unsqueeze(0)
        return DataLoader(self._transformed(X), batch_size=self.batch_size, drop_last=False, shuffle=False)


class QuietRCA(RCA):
    """DeepOD's RCA without the progress bar its scoring draws whatever ``verbose`` says."""

    def _inference(self) -> tuple[np.ndarray, np.ndarray]:
        with mock.patch.object(deepod_rca, "trange", partial(trange, disable=True)):
            return super()._inference()


def full_rank_pca(seed: int, X: np.ndarray) -> PCA:
    """PyOD's PCA on the components of the training rows' rank (as PyOD standardises them).

    At PyOD's default (every component) each component's distance is divided by its explained
    variance ratio, and the constant training columns and the one-hot groups (whose columns sum
    to one) leave components of zero variance, or of rounding only: every score comes out inf.
    """
    return PCA(n_components=int(np.linalg.matrix_rank(StandardScaler().fit_transform(X))), random_state=seed)


#: name -> (seed, epochs, device, training rows) -> an unfitted detector with ``fit`` and ``decision_function``
PEERS: dict[str, Callable[[int, int, str, np.ndarray], Any]] = {
    "AutoEncoder": lambda s, e, dev, _: AutoEncoder(epoch_num=e, device=dev, random_state=s, verbose=0),
    "VAE": lambda s, e, dev, _: VAE(epoch_num=e, device=dev, random_state=s, verbose=0),
    "DeepSVDD": lambda s, e, _, X: DeepSVDD(n_features=X.shape[1], epochs=e, random_state=s, verbose=0),
    "IForest": lambda s, e, dev, _: IForest(random_state=s),
    "PCA": lambda s, e, dev, X: full_rank_pca(s, X),
    "NeuTraL": lambda s, e, dev, _: NeuTraL(epochs=e, device=dev, random_state=s, verbose=0),
    "ICL": lambda s, e, dev, _: ICL(epochs=e, device=dev, random_state=s, verbose=0),
    "GOAD": lambda s, e, dev, _: ChunkedGOAD(epochs=e, device=dev, random_state=s, verbose=0),
    "RCA": lambda s, e, dev, _: QuietRCA(epochs=e, device=dev, random_state=s, verbose=0),
    "DIF": lambda s, e, dev, _: TrainScaledDIF(device=dev, random_state=s, verbose=0),
    "SLAD": lambda s, e, dev, _: SLAD(epochs=e, device=dev, random_state=s, verbose=0),
}
#: SLAD's scores can go NaN (DeepOD 0.4.1): it runs only when named
DEFAULT_PEERS = [p for p in PEERS if p != "SLAD"]
PEER_LIBRARY = {p: "pyod" if p in ("AutoEncoder", "VAE", "DeepSVDD", "IForest", "PCA") else "deepod" for p in PEERS}


@dataclass
class Peer:
    """A fitted peer as a kddad scorer: higher scores are more anomalous, no feature scores."""

    model: Any

    def score(self, X: np.ndarray) -> tuple[np.ndarray, None]:
        parts = [self.model.decision_function(X[i : i + SCORE_CHUNK]) for i in range(0, len(X), SCORE_CHUNK)]
        return np.concatenate(parts).astype(np.float64), None


@dataclass(frozen=True)
class Split:
    """One split's rows (for the views), encoded features and is-outlier labels."""

    frame: pd.DataFrame
    X: np.ndarray
    y: np.ndarray


def load(paths: Paths) -> dict[str, Split]:
    """Every split a run is judged on, loaded once for all detectors."""
    return {
        name: Split(load_split(name, paths), *load_features(name, paths))
        for name in ("train", "val", "threshold", "test", ATTACKS, THRESHOLD_ATTACKS)
    }


def seed_everything(seed: int) -> None:
    """Global seeds too: some peers draw from numpy's or torch's global generator (shuffles, transforms)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def threshold_of(cfg: Config, batch: View, val_scores: np.ndarray | None) -> float:
    """The threshold stage's rule (``kddad.stages.model.threshold``), for any detector's scores."""
    t = cfg.threshold
    if t.method == "percentile":
        perc = t.perc_outlier if t.perc_outlier is not None else cfg.split.threshold.perc_outlier
        return float(np.percentile(batch.scores, 100 - perc))
    if t.method == "f1":
        return best_f1_cut(batch.scores, batch.y)
    return float(np.quantile(val_scores, 1 - t.fpr))


def _view(name: str, split: Split, det: Scorer) -> View:
    return scored(name, split.frame, split.X, split.y, det)


def measure(det: Scorer, data: dict[str, Split], cfg: Config) -> dict[str, float]:
    """One fitted detector's columns (all but fit seconds); only rows/s and a mark where a score is not finite."""
    batch = _view("threshold_batch", data["threshold"], det)
    pool = beside("threshold_pool", batch, _view(THRESHOLD_ATTACKS, data[THRESHOLD_ATTACKS], det))
    val = det.score(data["val"].X)[0] if cfg.threshold.method == "fpr" else None
    start = time.perf_counter()
    test = _view("test", data["test"], det)
    heldout = beside("heldout_attacks", test, _view(ATTACKS, data[ATTACKS], det))
    seconds = time.perf_counter() - start
    out = {"rows_s": (len(data["test"].y) + len(data[ATTACKS].y)) / seconds}
    scores = [batch.scores, pool.scores, test.scores, heldout.scores, *([] if val is None else [val])]
    if not all(np.isfinite(s).all() for s in scores):
        return {**out, "nonfinite": 1.0}
    cut = threshold_of(cfg, batch, val)
    t = detection_metrics(test.y, test.scores, cut)
    cats = category_metrics(heldout.y, heldout.scores, cut, heldout.category)
    out.update(
        pool=category_metrics(pool.y, pool.scores, cut, pool.category).get("macro", {}).get("roc_auc", np.nan),
        test_auc=t["roc_auc"],
        test_f1=t["f1"],
        macro=cats.get("macro", {}).get("roc_auc", np.nan),
        **{c: cats[c]["roc_auc"] if c in cats else np.nan for c in CATEGORIES},
        dos_r=cats["dos"]["recall_at_fpr"]["0.001"] if "dos" in cats else np.nan,
    )
    return out


def fit_peer(name: str, seed: int, epochs: int, device: str, X: np.ndarray) -> tuple[Peer, float]:
    seed_everything(seed)
    model = PEERS[name](seed, epochs, device, X)
    start = time.perf_counter()
    model.fit(X)
    return Peer(model), time.perf_counter() - start


def fit_kddad(cfg: Config, paths: Paths, seed: int) -> tuple[Scorer, float]:
    quiet = cfg.trainer.model_copy(update={"enable_progress_bar": False})
    start = time.perf_counter()
    det = train(cfg.model_copy(update={"seed": seed, "trainer": quiet}), paths)
    det.set_score(**cfg.score.scoring_part())
    return det, time.perf_counter() - start


#: (key, header, digits): the table's metric columns in order
COLUMNS = (
    ("pool", "pool macro AUC*", 4),
    ("test_auc", "test ROC-AUC", 4),
    ("test_f1", "test F1", 4),
    ("macro", "held-out macro AUC", 4),
    *((c, f"{c} AUC", 4) for c in CATEGORIES),
    ("dos_r", "DoS recall@0.1%FPR", 4),
    ("fit_s", "fit s", 1),
    ("rows_s", "score rows/s", 0),
)
TIMES = ("fit_s", "rows_s")


def cell(values: list[float], digits: int) -> str:
    """mean ± std over seeds (the value alone from one seed); "—" where the split has no such rows."""
    v = np.asarray(values, dtype=float)
    if np.isnan(v).all():
        return "—"
    fmt = ",.0f" if digits == 0 else f".{digits}f"
    return f"{np.mean(v):{fmt}}" if len(v) == 1 else f"{np.mean(v):{fmt}} ± {np.std(v):{fmt}}"


def cells(runs: list[dict[str, float]]) -> list[str]:
    """A detector's row; its metrics over the seeds whose scores were all finite."""
    finite = [r for r in runs if not r.get("nonfinite")]
    return [
        cell([r.get(k, np.nan) for r in (runs if k in TIMES else finite)], d) if finite or k in TIMES else "not finite"
        for k, _, d in COLUMNS
    ]


def table(rows: dict[str, list[dict[str, float]]], markdown: bool) -> list[str]:
    head = ["detector", *(h for _, h, _ in COLUMNS)]
    body = [[name, *cells(runs)] for name, runs in rows.items()]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(COLUMNS)) + "|"]
        return lines + ["| " + " | ".join(r) + " |" for r in body]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    fmt = [f"{{:<{widths[0]}}}", *(f"{{:>{w}}}" for w in widths[1:])]
    return ["  ".join(f.format(c) for f, c in zip(fmt, r)) for r in [head, *body]]


class Saved:
    """Finished (detector, seed) measurements in a JSON-lines file (``--save``), keyed by what ran."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.done: dict[tuple[str, int], dict[str, float]] = {}
        self.reused: dict[str, int] = {}
        if path is None or not path.is_file():
            return
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                rec = json.loads(line)
                self.done[rec["key"], int(rec["seed"])] = {k: float(v) for k, v in rec["result"].items()}
            except (ValueError, TypeError, KeyError, AttributeError) as err:
                raise KddadError(
                    f"{path}:{i}: expected a record of bench/peers.py --save (key, seed, result), "
                    f"got {line[:80]!r} ({type(err).__name__})"
                ) from None

    def get(self, key: str, row: str, seed: int) -> dict[str, float] | None:
        r = self.done.get((key, seed))
        if r is not None:
            self.reused[row] = self.reused.get(row, 0) + 1
        return r

    def add(self, key: str, row: str, seed: int, result: dict[str, float]) -> None:
        if self.path is None:
            return
        rec = {"key": key, "row": row, "seed": seed, "machine": MACHINE, "result": result}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")


MACHINE = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def run_key(cfg: Config, **what: object) -> str:
    """What a saved measurement stands for: the composed config a kddad row trains, or the data a
    peer fits on and the threshold rule, so that a changed default or encoding never reuses a
    measurement of another."""
    data_and_rule = {"dataset", "split", "features", "scaling", "threshold"}
    not_measured = {"tracking", "seed", "download"}  # how a run is logged, seeded (per record) and fetched
    dump = cfg.model_dump(exclude=not_measured) if what.get("kddad") else cfg.model_dump(include=data_and_rule)
    return json.dumps({**what, "config": dump}, sort_keys=True)


def _progress(name: str, seed: int, r: dict[str, float]) -> None:
    print(
        f"{name} seed {seed}: fit {r['fit_s']:.1f} s, scoring {r['rows_s']:,.0f} rows/s, "
        f"pool macro AUC {r.get('pool', np.nan):.4f}",
        file=sys.stderr,
        flush=True,
    )


def run_kddad(
    name: str,
    split_overrides: list[str],
    overrides: list[str],
    seeds: list[int],
    paths: Paths,
    data: dict[str, Split],
    rows: dict[str, list[dict[str, float]]],
    notes: list[str],
    saved: Saved,
) -> None:
    """One kddad configuration over the seeds, into ``rows`` (as it goes: an interrupted run keeps them)."""
    cfg, own_paths = prepared([*split_overrides, *overrides, "tracking.enabled=false"])
    own = data if own_paths.features == paths.features else load(own_paths)
    if own is not data:
        notes.append(f"{name}: encodes the rows otherwise than the peers; trained and scored on its own arrays")
    notes.append(f"{name}: overrides {' '.join(overrides) or '(none)'}")
    key = run_key(cfg, kddad=True)
    for seed in seeds:
        if (r := saved.get(key, name, seed)) is not None:
            rows.setdefault(name, []).append(r)
            continue
        det, fit_s = fit_kddad(cfg, own_paths, seed)
        rows.setdefault(name, []).append({**measure(det, own, cfg), "fit_s": fit_s})
        saved.add(key, name, seed, rows[name][-1])
        _progress(name, seed, rows[name][-1])
        del det


def run_peer(
    name: str,
    seeds: list[int],
    epochs: int,
    device: str,
    cfg: Config,
    data: dict[str, Split],
    rows: dict[str, list[dict[str, float]]],
    notes: list[str],
    saved: Saved,
) -> None:
    """One peer over the seeds, into ``rows``; a peer that fails is named under the table, the others go on."""
    label = f"{PEER_LIBRARY[name]} {name}"
    if name in EPOCHS:
        notes.append(f"{label}: epochs {epochs}")
    key = run_key(cfg, peer=name, epochs=epochs, device=device)
    for seed in seeds:
        if (r := saved.get(key, label, seed)) is not None:
            rows.setdefault(label, []).append(r)
            continue
        try:
            det, fit_s = fit_peer(name, seed, epochs, device, data["train"].X)
            rows.setdefault(label, []).append({**measure(det, data, cfg), "fit_s": fit_s})
        except Exception as e:  # a peer's own fault: recorded, and the benchmark goes on
            notes.append(f"{label}: failed at seed {seed}: {type(e).__name__}: {e}")
            return
        saved.add(key, label, seed, rows[label][-1])
        _progress(label, seed, rows[label][-1])
        del det
    if bad := [s for s, r in zip(seeds, rows[label]) if r.get("nonfinite")]:
        notes.append(f"{label}: scores not finite at seed(s) {bad}: left out of its metrics")


def _pairs(items: list[str], what: str) -> dict[str, str]:
    bad = [i for i in items if "=" not in i]
    if bad:
        raise SystemExit(f"{what}: expected NAME=VALUE, got {bad}")
    return dict(i.split("=", 1) for i in items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--split-overrides", default="", help='overrides of the data, e.g. "split=dagmm"')
    ap.add_argument(
        "--peer-overrides",
        default="",
        help='overrides of the peers\' encoding only, after --split-overrides, e.g. "scaling=standard"',
    )
    ap.add_argument(
        "--peers", nargs="*", default=DEFAULT_PEERS, choices=list(PEERS), metavar="NAME", help=f"of {', '.join(PEERS)}"
    )
    ap.add_argument("--kddad", action="append", metavar="NAME=OVERRIDES", help='e.g. "quick=trainer.max_epochs=2"')
    ap.add_argument("--epochs", nargs="+", default=[], metavar="NAME=N", help=f"of {', '.join(EPOCHS)}")
    ap.add_argument("--device", default="cpu", help="torch device of the peers (kddad: trainer.accelerator)")
    ap.add_argument("--markdown", action="store_true", help="print the table as GitHub markdown")
    ap.add_argument("--save", type=Path, metavar="FILE", help="JSON lines of finished (detector, seed): resumes")
    args = ap.parse_args()
    try:
        saved = Saved(args.save)
    except KddadError as err:
        ap.error(str(err))
    epochs = {**EPOCHS, **{k: int(v) for k, v in _pairs(args.epochs, "--epochs").items()}}
    if unknown := set(epochs) - set(EPOCHS):
        raise SystemExit(f"--epochs: no epochs to set for {sorted(unknown)}; these train: {', '.join(EPOCHS)}")
    kddad = KDDAD_DEFAULT if not args.kddad else {k: v.split() for k, v in _pairs(args.kddad, "--kddad").items()}
    split_overrides = args.split_overrides.split()
    for name, overrides in kddad.items():  # a bad override fails now, not after the rows before it
        try:
            composed([*split_overrides, *overrides])
        except KddadError as err:
            ap.error(f"--kddad {name}: {err}")

    logging.basicConfig(level=logging.ERROR)
    for name in ("pytorch_lightning", "pytorch_lightning.utilities.rank_zero", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"machine: {MACHINE}, torch threads {torch.get_num_threads()}")
    peer_overrides = args.peer_overrides.split()
    print(f"split overrides: {' '.join(split_overrides) or '(none)'}")
    print(f"peer overrides: {' '.join(peer_overrides) or '(none)'}")
    print(f"seeds: {args.seeds}; peers on device {args.device}")
    print(f"versions: pyod {pyod.__version__}, deepod {version('deepod')}, torch {torch.__version__}")

    try:
        composed([*split_overrides, *peer_overrides])
    except KddadError as err:
        ap.error(f"--peer-overrides: {err}")
    cfg, paths = prepared([*split_overrides, *peer_overrides, "tracking.enabled=false"])
    data = load(paths)
    X = data["train"].X
    print(
        f"rows: train {len(X):,} × {X.shape[1]} features, threshold batch {len(data['threshold'].y):,}, "
        f"threshold pool attacks {len(data[THRESHOLD_ATTACKS].y):,}, test {len(data['test'].y):,}, "
        f"held-out attacks {len(data[ATTACKS].y):,}",
        flush=True,
    )
    rows: dict[str, list[dict[str, float]]] = {}
    notes: list[str] = []
    try:
        for name, overrides in kddad.items():
            run_kddad(name, split_overrides, overrides, args.seeds, paths, data, rows, notes, saved)
        for name in args.peers:
            run_peer(name, args.seeds, epochs.get(name, 0), args.device, cfg, data, rows, notes, saved)
    except KeyboardInterrupt:
        notes.append("interrupted: the table holds the detectors and seeds finished before")
    print()
    print("\n".join(table(rows, args.markdown)))
    print(
        "\n* the threshold pool (threshold-batch normals beside the threshold pool's attacks): "
        "the one view choices may be made on; the rest is for the record"
    )
    for note in notes:
        print(f"  {note}")
    for row, n in saved.reused.items():
        print(f"  {row}: {n} seed(s) from {args.save} (fit s and rows/s as measured then)")


if __name__ == "__main__":
    main()
