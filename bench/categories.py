"""Per-category detection over 3 training seeds: what a change does for R2L and U2R, chosen honestly.

Each configuration (Hydra overrides of conf/) is trained with the pipeline's own stage functions
on the default leakage-free split (data stages cached under bench/.cache). Configurations are
compared on the **threshold pool**: the threshold batch's normal rows beside every attack row of
the threshold pool (27,304 rows, 263 R2L and 19 U2R at split seed 0), data the test split never
sees. The held-out attacks against the test normals (the evaluate stage's view) are printed
after, for the record: they are not what a choice is made on.

``--thresholds``: for the first configuration, where each way of setting the threshold puts the
operating point, judged on data outside the test split only: the false-positive rate on the
validation normals, F1 on the threshold batch (and, with the cut set on the other half of the
batch, on each half: a rule fitted to the batch's labels is judged on rows it did not see), and
each category's recall on the threshold pool.

Usage: python bench/categories.py [--seeds 0 1 2] [--config "NAME=OVERRIDES"]... [--extra OVERRIDES]
       python bench/categories.py --thresholds
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
import warnings
from collections.abc import Callable

import numpy as np
from _data import prepared
from sklearn.metrics import f1_score

from kddad.data.split import ATTACKS, THRESHOLD_ATTACKS
from kddad.evaluation import category_metrics
from kddad.evaluation.views import View, beside, scored
from kddad.stages.data import load_split
from kddad.stages.evaluate import split_view
from kddad.stages.model import load_features, train
from kddad.thresholds import best_f1_cut

CONFIGS = {
    "default": [],
    "plain VAE": ["experiment=plain_vae"],
}
COLUMNS = ("dos", "probe", "r2l", "u2r", "macro")


def views(det, paths) -> dict[str, dict]:
    """Per-category ROC-AUC on the threshold pool (for choosing) and on the held-out attacks (reported)."""
    out = {}
    for name, normals, attacks in (
        ("threshold pool", "threshold", THRESHOLD_ATTACKS),
        ("held-out attacks", "test", ATTACKS),
    ):
        v = beside(name, split_view(det, normals, paths), split_view(det, attacks, paths))
        out[name] = _by_category(v, np.inf)
    return out


def _by_category(v: View, threshold: float) -> dict:
    return category_metrics(v.y, v.scores, threshold, v.category)


#: name → the cut from (threshold-batch scores, their labels, val normals' scores)
THRESHOLDS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
    "percentile 95 (default)": lambda b, y, v: float(np.percentile(b, 95)),
    "f1 (best on the batch)": lambda b, y, v: best_f1_cut(b, y),
    "fpr 0.1%": lambda b, y, v: float(np.quantile(v, 0.999)),
    "fpr 1%": lambda b, y, v: float(np.quantile(v, 0.99)),
    "fpr 5%": lambda b, y, v: float(np.quantile(v, 0.95)),
}


def two_fold_f1(rule: Callable, b: np.ndarray, y: np.ndarray, v: np.ndarray) -> float:
    """F1 on each half of the threshold batch at the cut the other half sets, averaged: a rule that
    fits the batch's labels is judged on rows it did not see."""
    half = np.random.default_rng(0).permutation(len(b)) % 2 == 0
    f1s = [f1_score(y[~h], b[~h] > rule(b[h], y[h], v)) for h in (half, ~half)]
    return float(np.mean(f1s))


def operating_points(cfg, paths, seeds: list[int]) -> None:
    """Each threshold method's cost (val FPR) and catch (threshold-pool recall per category), mean over seeds."""
    rows: dict[str, list[list[float]]] = {}
    X_val = load_features("val", paths)[0]
    X_thr, y_thr = load_features("threshold", paths)
    X_pool, y_pool = load_features(THRESHOLD_ATTACKS, paths)
    thr_frame, pool_frame = load_split("threshold", paths), load_split(THRESHOLD_ATTACKS, paths)
    for seed in seeds:
        quiet = cfg.trainer.model_copy(update={"enable_progress_bar": False})
        det = train(cfg.model_copy(update={"seed": seed, "trainer": quiet}), paths)
        det.set_score(samples=cfg.score.samples, outlier_perc=cfg.score.outlier_perc)
        s_val = det.score(X_val)[0]
        batch = scored("threshold", thr_frame, X_thr, y_thr, det)
        pool = beside("threshold pool", batch, scored(THRESHOLD_ATTACKS, pool_frame, X_pool, y_pool, det))
        for name, rule in THRESHOLDS.items():
            cut = rule(batch.scores, y_thr, s_val)
            m = _by_category(pool, cut)
            rows.setdefault(name, []).append(
                [(s_val > cut).mean(), f1_score(y_thr, batch.scores > cut)]
                + [two_fold_f1(rule, batch.scores, y_thr, s_val)]
                + [m.get(c, {}).get("recall", np.nan) for c in COLUMNS]
            )
    print(
        f"{'threshold':<26}{'val FPR':>9}{'thr-batch F1':>13}{'2-fold F1':>11}"
        + "".join(f"{c + ' recall':>14}" for c in COLUMNS)
    )
    for name, vals in rows.items():
        mean = np.mean(vals, axis=0)
        print(f"{name:<26}{mean[0]:>9.4f}{mean[1]:>13.4f}{mean[2]:>11.4f}" + "".join(f"{v:>14.3f}" for v in mean[3:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--config", action="append", metavar="NAME=OVERRIDES", help='e.g. "mine=scaling.log1p=true"')
    ap.add_argument("--extra", default="", help="overrides added to every configuration, e.g. dataset=nslkdd")
    ap.add_argument("--thresholds", action="store_true", help="compare threshold methods for the first configuration")
    args = ap.parse_args()
    configs = CONFIGS if not args.config else {c.split("=", 1)[0]: c.split("=", 1)[1].split() for c in args.config}
    logging.basicConfig(level=logging.ERROR)
    for name in ("pytorch_lightning", "pytorch_lightning.utilities.rank_zero", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; seeds {args.seeds}")
    if args.thresholds:
        name, overrides = next(iter(configs.items()))
        print(f"{name}: {' '.join(overrides) or '(no overrides)'}; recall on the threshold pool")
        operating_points(*prepared([*overrides, *args.extra.split(), "tracking.enabled=false"]), args.seeds)
        return
    print("ROC-AUC per category")
    head = "".join(f"{c:>16}" for c in COLUMNS)
    print(f"{'configuration':<28}{'view':<18}{head}{'s/run':>7}")
    for name, overrides in configs.items():
        cfg, paths = prepared([*overrides, *args.extra.split(), "tracking.enabled=false"])
        got: dict[str, dict[str, list[float]]] = {}
        seconds = []
        for seed in args.seeds:
            quiet = cfg.trainer.model_copy(update={"enable_progress_bar": False})
            start = time.perf_counter()
            det = train(cfg.model_copy(update={"seed": seed, "trainer": quiet}), paths)
            det.set_score(samples=cfg.score.samples, outlier_perc=cfg.score.outlier_perc)
            for view, cats in views(det, paths).items():
                for c in COLUMNS:
                    got.setdefault(view, {}).setdefault(c, []).append(cats.get(c, {}).get("roc_auc", np.nan))
            seconds.append(time.perf_counter() - start)
        for i, (view, cols) in enumerate(got.items()):
            cells = "".join(f"{np.mean(v):>9.4f}±{np.std(v):.3f}" for v in cols.values())
            print(
                f"{name if i == 0 else '':<28}{view:<18}{cells}{np.mean(seconds) if i == 0 else '':>7.0f}"
                if i == 0
                else f"{'':<28}{view:<18}{cells}"
            )
        print(f"{'':<28}overrides: {' '.join(overrides) or '(none)'}", flush=True)


if __name__ == "__main__":
    main()
