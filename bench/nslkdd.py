"""NSL-KDD's official protocol over 3 training seeds: KDDTest+ (and KDDTest-21) figures, mean ± std.

Trains on all of KDDTrain+ (``--dataset nslkdd20``: its 20% file) and tests on all of KDDTest+
(`dataset=nslkdd`, which selects `split=test_file` and `threshold=fpr` at 5% of the validation
normals), through the pipeline's
own stage functions (train → threshold → evaluate, data stages cached under bench/.cache; no
MLflow). Prints what the evaluate stage puts in reports/metrics.json: ROC-AUC, F1, accuracy,
per-category ROC-AUC and recall, and the same on KDDTest-21 (the rows with difficulty < 21).
The test set is only reported, never chosen on.

Usage: python bench/nslkdd.py [--seeds 0 1 2] [--dataset nslkdd20] [--overrides "experiment=plain_vae ..."]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import warnings

import numpy as np
from _data import prepared

from kddad.stages.evaluate import evaluate
from kddad.stages.model import threshold, train

CATEGORIES = ("dos", "probe", "r2l", "u2r", "macro")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--dataset", default="nslkdd", choices=["nslkdd", "nslkdd20"], help="the training file's preset")
    ap.add_argument("--overrides", default="", help="Hydra overrides added to the dataset's")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for name in ("pytorch_lightning", "pytorch_lightning.utilities.rank_zero", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    cfg, paths = prepared([f"dataset={args.dataset}", *args.overrides.split(), "tracking.enabled=false"])
    views: dict[str, dict[str, list[float]]] = {}
    for seed in args.seeds:
        quiet = cfg.trainer.model_copy(update={"enable_progress_bar": False})
        run = cfg.model_copy(update={"seed": seed, "trainer": quiet})
        train(run, paths)
        threshold(run, paths)
        m = evaluate(run, paths)
        for view, key in (("KDDTest+", "test"), ("KDDTest-21", "test_difficulty_below_21")):
            got = views.setdefault(view, {})
            v = {**m, **m[key]} if key == "test" else m[key]  # the test set's headline is top-level
            for k in ("roc_auc", "f1", "accuracy", "precision", "recall", "fpr"):
                got.setdefault(k, []).append(v[k])
            for c in CATEGORIES:
                got.setdefault(f"{c} ROC-AUC", []).append(v["categories"][c]["roc_auc"])
                got.setdefault(f"{c} recall", []).append(v["categories"][c]["recall"])
    where = f"machine: {platform.machine()}, {os.cpu_count()} cores; seeds {args.seeds}"
    print(f"{where}; dataset={args.dataset}; overrides: {args.overrides or '(none)'}")
    print(f"{'figure':<16}" + "".join(f"{v:>20}" for v in views))
    for k in next(iter(views.values())):
        print(f"{k:<16}" + "".join(f"{np.mean(v[k]):>11.4f} ± {np.std(v[k]):.4f}" for v in views.values()))


if __name__ == "__main__":
    main()
