"""The default pipeline on one device, tracking off: F1, ROC-AUC and the training time.

The default configuration (conf/, as params.yaml) with ``tracking.enabled=false`` and the given
accelerator, once per ``trainer.cuda_graph`` value, at the default seed: the data stages
(download → split → encode, cached under bench/.cache), then the train and threshold stages, then
the evaluate stage's headline metrics on the test split (computed as it computes them; its
figures, and so matplotlib, left out).

Usage: python bench/pipeline_device.py [--accelerator cuda] [--cuda-graph true false] [--override KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _data import prepared

import kddad.models.training  # noqa: F401  (imported before the timing: Lightning takes seconds to import)
from kddad.detector import read_threshold
from kddad.evaluation import detection_metrics
from kddad.paths import Paths
from kddad.stages.model import load_features, threshold, train, trained_detector


def run(overrides: list[str], save: Path | None = None) -> None:
    cfg, data = prepared(overrides)
    with tempfile.TemporaryDirectory(prefix="kddad-device-") as tmp:
        paths = Paths(tmp, data_root=data.root)
        start = time.perf_counter()
        det = train(cfg, paths)
        seconds = time.perf_counter() - start
        threshold(cfg, paths)
        scored = trained_detector(cfg, paths)  # as the evaluate stage loads it: on the training device
        X, y = load_features("test", paths)
        X_att, _ = load_features("attacks", paths)
        scores, _ = scored.score(X)
        start = time.perf_counter()
        scored.score(X_att)
        score_s = time.perf_counter() - start
        on_cpu, _ = scored.to("cpu").score(X)
        m = detection_metrics(y, scores, read_threshold(paths.threshold)["threshold"])
        if save:
            shutil.rmtree(save, ignore_errors=True)
            shutil.copytree(paths.detector, save / "detector")
            shutil.copy(paths.threshold, save / paths.threshold.name)
    epochs = len(det.history)
    print(f"  overrides: {' '.join(overrides)}")
    print(
        f"  F1 {m['f1']:.4f}  precision {m['precision']:.4f}  recall {m['recall']:.4f}  ROC-AUC {m['roc_auc']:.5f}"
        f"  PR-AUC {m['pr_auc']:.5f}  on {m['rows']} test rows"
    )
    device = cfg.trainer.scoring_device
    rel = float(np.max(np.abs(scores - on_cpu) / np.maximum(1.0, np.abs(on_cpu))))
    print(
        f"  scoring on {device}: {len(X_att) / score_s:,.0f} rows/s ({len(X_att)} held-out attack rows); "
        f"test scores vs CPU: max relative difference {rel:.2e}"
    )
    print(f"  train stage {seconds:.1f} s, {epochs} epochs ({seconds / max(epochs, 1):.2f} s/epoch with the set-up)")
    print(
        "  epoch train_loss val_loss: "
        + "; ".join(f"{int(r['epoch'])} {r['train_loss']:.4f} {r['val_loss']:.4f}" for r in det.history)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accelerator", default="cuda")
    ap.add_argument("--cuda-graph", nargs="+", default=["true", "false"], choices=["true", "false"])
    ap.add_argument("--override", action="append", default=[], help="one more Hydra override of conf/ (repeatable)")
    ap.add_argument("--save", type=Path, help="keep the first run's detector and threshold.json in this folder")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="  log %(name)s: %(message)s")
    for name in ("pytorch_lightning", "pytorch_lightning.utilities.rank_zero", "kddad.data", "kddad.features"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    where = ""
    if args.accelerator in ("cuda", "gpu") and torch.cuda.is_available():
        torch.zeros(1, device="cuda")  # the CUDA context, before the timing
        where = torch.cuda.get_device_name()
    print(f"torch {torch.__version__}; accelerator {args.accelerator} {where}".rstrip(), flush=True)
    for i, graph in enumerate(args.cuda_graph):
        print(f"cuda_graph={graph}:", flush=True)
        run(
            [
                "tracking.enabled=false",
                f"trainer.accelerator={args.accelerator}",
                f"trainer.cuda_graph={graph}",
                "trainer.enable_progress_bar=false",
                *args.override,
            ],
            args.save if i == 0 else None,
        )


if __name__ == "__main__":
    main()
