"""Checks of the graphed training step on a CUDA device (what the CPU tests cannot run).

1. RNG: a captured ``torch.randn`` draws fresh numbers each replay, the same as eager draws.
2. GraphedStep, graphed against eager (same fused, capturable Adam, same seed, a shorter last
   batch each epoch): per-epoch losses and final weights should agree to float rounding (a
   different noise seed, printed beside, shows the scale of a real difference).
3. The shared training loop (kddad.models.training.fit, through the model kinds' ``fit``) with
   cuda_graph true and false, and with gradient clipping and 16-mixed precision (which must fall
   back to eager, saying why), for the VAE and for Deep SVDD (a loss that is no reconstruction):
   histories side by side; early stopping's best weights loaded back.

Synthetic data (no data files needed); prints PASS/FAIL lines; exit status 1 on any FAIL.
``--device cpu`` dry-runs parts 2 and 3 on the CPU (steps run eagerly there: "captured" fails).

Usage: python bench/graph_check.py [--device cuda|cpu]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
import traceback
import warnings

import torch
from pytorch_lightning.callbacks import Callback

from kddad.config.schema import DeepSVDDConfig, EarlyStoppingConfig, NetworkConfig, ScoreConfig, TrainerConfig
from kddad.models.autoencoder import reconstruction_loss
from kddad.models.base import model_class
from kddad.models.batches import TensorBatches
from kddad.models.graphed import GraphedStep
from kddad.models.networks import DecoderHead, build_network
from kddad.models.neural import NeuralModel

ROWS, FEATURES, BATCH = 5000, 71, 128  # 39 full batches and one of 8 rows an epoch
failures: list[str] = []
DEVICE = "cuda"
SCORE = ScoreConfig(name="likelihood", min_var=1e-3)
KINDS = {  # the model kinds part 3 trains
    "vae": NetworkConfig(name="vae", hidden=[64, 32], latent=8, lr=1e-3, batch_size=BATCH),
    "deep_svdd": DeepSVDDConfig(name="deep_svdd", hidden=[64, 32], rep_dim=16, lr=1e-3, batch_size=BATCH),
}


def check(ok: bool, what: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}: {what}", flush=True)
    if not ok:
        failures.append(what)


def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(FEATURES, KINDS["vae"], DecoderHead.for_score(SCORE)).to(DEVICE)


def model(kind: str, trainer: dict) -> NeuralModel:
    """An unfitted model of ``kind`` training on DEVICE for at most 4 epochs, patience 2."""
    cfg = KINDS[kind]
    trainer_cfg = TrainerConfig(accelerator=DEVICE, devices=1, max_epochs=4, enable_progress_bar=False, **trainer)
    return model_class(cfg)(cfg, SCORE, trainer_cfg, EarlyStoppingConfig(patience=2), seed=0)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(ROWS, FEATURES, generator=g), torch.randn(1000, FEATURES, generator=g)


def rng() -> None:
    g = torch.cuda.CUDAGraph()
    out = torch.empty(1000, device="cuda")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        out.normal_()  # warm-up
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.manual_seed(7)
    eager = [torch.randn(1000, device="cuda") for _ in range(3)]
    torch.cuda.manual_seed(7)
    with torch.cuda.graph(g):
        out.copy_(torch.randn(1000, device="cuda"))
    replays = []
    for _ in range(3):
        g.replay()
        replays.append(out.clone())
    torch.cuda.synchronize()
    check(not torch.equal(replays[0], replays[1]), "RNG: two replays draw different numbers")
    same = all(torch.equal(a, b) for a, b in zip(eager, replays))
    print(f"      replays equal to the eager draws after the same seed: {same} (expected: True)")
    check(abs(float(torch.stack(replays).std()) - 1) < 0.1, "RNG: replayed draws look standard normal")


def bare(graph: bool, noise_seed: int = 5, clip: float | None = None) -> tuple[list[float], torch.nn.Module, dict]:
    model = net().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True, capturable=True)
    step = GraphedStep(
        lambda x: reconstruction_loss(model, x, likelihood=True, beta=1.0, recon_std=0.01),
        model.parameters(),
        opt,
        clip=clip,
        graph=graph,
    )
    batches = TensorBatches(data()[0].to(DEVICE), BATCH, shuffle=True, seed=0)
    torch.manual_seed(noise_seed)
    means = []
    for _ in range(3):
        step.reset()
        for xb in batches:
            step.step(xb)
        means.append(float(step.mean_loss()))
    return means, model, {"graph": step.graph is not None, "graphed": step.graphed, "rows": step.rows}


def max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(float((p - q).abs().max()) for p, q in zip(a.parameters(), b.parameters()))


def graphed_step() -> None:
    for clip in (None, 0.5):
        t0 = time.perf_counter()
        eager, net_e, _ = bare(False, clip=clip)
        graphed, net_g, info = bare(True, clip=clip)
        other, net_o, _ = bare(False, noise_seed=6, clip=clip)
        print(f"      clip {clip}: eager losses   {[round(v, 6) for v in eager]}")
        print(f"      clip {clip}: graphed losses {[round(v, 6) for v in graphed]}  {info}")
        d, d_other = max_diff(net_e, net_g), max_diff(net_e, net_o)
        print(f"      clip {clip}: max |weight diff| graphed-eager {d:.3g}; eager with other noise {d_other:.3g}")
        check(info["graph"] and info["rows"] == ROWS, f"GraphedStep (clip {clip}): captured and replayed")
        rel = max(abs(a - b) / abs(b) for a, b in zip(graphed, eager))
        check(
            rel < 1e-4 and d < max(1e-4, d_other / 100), f"GraphedStep (clip {clip}): graphed = eager (rel {rel:.2g})"
        )
        print(f"      ({time.perf_counter() - t0:.1f} s)")


class EpochWeights(Callback):
    """Each epoch's weights, on the CPU (validation has run by on_train_epoch_end)."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_end(self, trainer, module) -> None:
        self.states.append({k: v.detach().cpu().clone() for k, v in module.network.state_dict().items()})


def fit_once(name: str, kind: str, X: torch.Tensor, X_val: torch.Tensor, extra: dict) -> list[dict[str, float]]:
    fitted, weights = model(kind, extra), EpochWeights()
    t0 = time.perf_counter()
    h = fitted.fit(X.numpy(), X_val.numpy(), callbacks=[weights])
    network = fitted.network
    rows = [(round(r["train_loss"], 5), round(r["val_loss"], 5)) for r in h]
    print(f"      {name:<18} {time.perf_counter() - t0:5.1f} s  (train, val) per epoch: {rows}")
    finite = all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in h)
    check(finite and next(network.parameters()).device.type == "cpu", f"Lightning {name}: trained, finite losses")
    best = min(range(len(h)), key=lambda i: h[i]["val_loss"])
    loaded = all(torch.equal(v, weights.states[best][k]) for k, v in network.state_dict().items())
    check(loaded, f"Lightning {name}: the best epoch's weights (epoch {best} of {len(h)}) loaded back")
    return h


def module() -> None:
    X, X_val = data()
    runs = {  # name: (model kind, trainer arguments, validation rows' scale)
        "eager": ("vae", {"cuda_graph": False}, 1.0),
        "graphed": ("vae", {"cuda_graph": True}, 1.0),
        "eager, clip 0.5": ("vae", {"cuda_graph": False, "gradient_clip_val": 0.5}, 1.0),
        "graphed, clip 0.5": ("vae", {"cuda_graph": True, "gradient_clip_val": 0.5}, 1.0),
        "16-mixed (eager)": ("vae", {"cuda_graph": True, "precision": "16-mixed"}, 1.0),
        "graphed, val x0.2": ("vae", {"cuda_graph": True}, 0.2),  # val loss rises early: the best epoch is not the last
        "deep_svdd eager": ("deep_svdd", {"cuda_graph": False}, 1.0),
        "deep_svdd graphed": ("deep_svdd", {"cuda_graph": True}, 1.0),
    }
    hist = {}
    for name, (kind, extra, val_scale) in runs.items():
        try:
            hist[name] = fit_once(name, kind, X, X_val * val_scale, extra)
        except Exception as err:  # one run failing must not hide the others
            traceback.print_exc()
            check(False, f"Lightning {name}: {type(err).__name__}: {err}")
    pairs = (("eager", "graphed"), ("eager, clip 0.5", "graphed, clip 0.5"), ("deep_svdd eager", "deep_svdd graphed"))
    for a, b in pairs:
        if a not in hist or b not in hist:
            continue
        rel = max(abs(x["train_loss"] - y["train_loss"]) / abs(x["train_loss"]) for x, y in zip(hist[a], hist[b]))
        check(
            len(hist[a]) == len(hist[b]) and rel < 1e-3,
            f"Lightning {b} ≈ {a}: train losses within rel {rel:.2g} (fused vs foreach Adam)",
        )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="      log %(name)s: %(message)s")
    for name in ("pytorch_lightning", "pytorch_lightning.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    global DEVICE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    DEVICE = ap.parse_args().device
    parts = [graphed_step, module]
    if DEVICE == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device visible")
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})", flush=True)
        parts.insert(0, rng)
    for part in parts:
        try:
            part()
        except Exception as err:  # report, go on with the next part
            traceback.print_exc()
            check(False, f"{part.__name__}: {type(err).__name__}: {err}")
    print(f"{len(failures)} failure(s)" + (": " + "; ".join(failures) if failures else ""))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
