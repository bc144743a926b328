"""Test ROC-AUC and F1 on the default leakage-free split, over 3 training seeds (mean ± std).

Each configuration is a list of Hydra overrides of conf/, run through the pipeline's own stage
functions (data stages cached under bench/.cache). The threshold batch's ROC-AUC and F1 are
printed too: that is the labelled data configurations are chosen on; the test split is only
reported. F1 is at the pipeline's threshold (the percentile of the threshold batch's scores).

Usage: python bench/roc_auc.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
import warnings

import numpy as np
from _data import prepared
from sklearn.metrics import f1_score, roc_auc_score

from kddad.stages.model import load_features, train

# Chosen on the threshold batch's ROC-AUC (see bench/README.md), never on the test split.
CONFIGS = {
    "alibi18 + VAE + mse": ["features=alibi18", "model=alibi_vae", "score=mse", "scaling=minmax", "model.latent=4"],
    "alibi18 + VAE(latent 2) + mse": ["features=alibi18", "model=alibi_vae", "score=mse", "scaling=minmax"],
    "all41 + VAE + likelihood": ["experiment=plain_vae", "features=all41", "model=vae", "score=likelihood"],
    "all41 + VAE(20-15-7, l2) + likelihood": ["experiment=plain_vae", "features=all41", "model=alibi_vae"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--config",
        action="append",
        metavar="NAME=OVERRIDES",
        help='e.g. "mine=features=all41 model=ae"; replaces the default configurations',
    )
    args = ap.parse_args()
    configs = CONFIGS if not args.config else {c.split("=", 1)[0]: c.split("=", 1)[1].split() for c in args.config}
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; seeds {args.seeds}")
    print(
        f"{'configuration':<38} {'test ROC-AUC':>18} {'test F1':>16} {'threshold-batch ROC-AUC':>24} "
        f"{'threshold-batch F1':>19} {'epochs':>7} {'s/run':>6}"
    )
    for name, overrides in configs.items():
        cfg, paths = prepared([*overrides, "tracking.enabled=false"])
        test, thr, test_f1, thr_f1, epochs, seconds = [], [], [], [], [], []
        for seed in args.seeds:
            quiet = cfg.trainer.model_copy(update={"enable_progress_bar": False})
            start = time.perf_counter()
            det = train(cfg.model_copy(update={"seed": seed, "trainer": quiet}), paths)
            seconds.append(time.perf_counter() - start)
            epochs.append(len(det.history))
            X, y = load_features("threshold", paths)
            det.set_score(samples=cfg.score.samples)
            cut = det.infer_threshold(X, cfg.split.threshold.perc_outlier)
            for split, auc, f1 in (("test", test, test_f1), ("threshold", thr, thr_f1)):
                X, y = load_features(split, paths)
                scores = det.score(X)[0]
                auc.append(roc_auc_score(y, scores))
                f1.append(f1_score(y, scores > cut))

        def ms(v: list[float]) -> str:
            return f"{np.mean(v):.5f} ± {np.std(v):.5f}"

        print(
            f"{name:<38} {ms(test):>18} {ms(test_f1):>16} {ms(thr):>24} {ms(thr_f1):>19}"
            f" {np.mean(epochs):>7.1f} {np.mean(seconds):>6.0f}"
        )
        print(f"{'':<38} overrides: {' '.join(overrides)}")


if __name__ == "__main__":
    main()
