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
import tempfile
import time
import warnings

import torch
from _data import prepared

import kddad.models.lightning  # noqa: F401  (imported before the timing: Lightning takes seconds to import)
from kddad.detector import read_threshold
from kddad.evaluation import detection_metrics
from kddad.paths import Paths
from kddad.stages.model import load_features, threshold, train, trained_detector


def run(overrides: list[str]) -> None:
    cfg, data = prepared(overrides)
    with tempfile.TemporaryDirectory(prefix="kddad-device-") as tmp:
        paths = Paths(tmp, data_root=data.root)
        start = time.perf_counter()
        det = train(cfg, paths)
        seconds = time.perf_counter() - start
        threshold(cfg, paths)
        scored = trained_detector(cfg, paths)  # as the evaluate stage loads it
        X, y = load_features("test", paths)
        scores, _ = scored.score(X)
        m = detection_metrics(y, scores, read_threshold(paths.threshold)["threshold"])
    epochs = len(det.history)
    print(f"  overrides: {' '.join(overrides)}")
    print(
        f"  F1 {m['f1']:.4f}  precision {m['precision']:.4f}  recall {m['recall']:.4f}  ROC-AUC {m['roc_auc']:.5f}"
        f"  PR-AUC {m['pr_auc']:.5f}  on {m['rows']} test rows"
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
    for graph in args.cuda_graph:
        print(f"cuda_graph={graph}:", flush=True)
        run(
            [
                "tracking.enabled=false",
                f"trainer.accelerator={args.accelerator}",
                f"trainer.cuda_graph={graph}",
                "trainer.enable_progress_bar=false",
                *args.override,
            ]
        )


if __name__ == "__main__":
    main()
