"""Training steps: the CUDA-graph step's bookkeeping on the CPU, and a CPU path left unchanged.

The shared loop (:func:`kddad.models.training.fit`) is driven through the model kinds themselves:
a VAE, and Deep SVDD, whose loss is no reconstruction. No CUDA here: :class:`FakeGraph` stands in
for the three CUDA specifics of :class:`~kddad.models.graphed.GraphedStep` (side stream, capture,
replay) with eager equivalents of what a graph does, so that everything around them (warm-up, the
static input buffer, the shorter last batch, the loss sum kept on the device, the Lightning
wiring) runs and is compared step for step with plain eager training. bench/gpu_check.sh checks
the real graph on a GPU.
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from kddad import config
from kddad.config.schema import DeepSVDDConfig, EarlyStoppingConfig, NetworkConfig, ScoreConfig, TrainerConfig
from kddad.errors import ConfigError
from kddad.models import training
from kddad.models.autoencoder import reconstruction_loss
from kddad.models.base import model_class
from kddad.models.batches import TensorBatches
from kddad.models.graphed import GraphedStep, graph_blocker
from kddad.models.networks import DecoderHead, build_network
from kddad.models.neural import NeuralModel
from kddad.models.training import ClosureOptimizer

ROWS, FEATURES, BATCH = 1000, 12, 128  # 7 full batches and one of 104 rows an epoch


class FakeGraph(GraphedStep):
    """GraphedStep on the CPU: "capture" records nothing and computes nothing (as capture does);
    a "replay" runs the captured step on the static input, its backward overwriting the
    gradients (a graph's backward writes them afresh: no accumulation)."""

    def __init__(self, *args, fail_capture: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.graphed = True
        self.fail_capture = fail_capture
        self.calls = {"warmup": 0, "capture": 0, "replay": 0}

    @contextlib.contextmanager
    def _side_stream(self):
        self.calls["warmup"] += 1
        yield

    def _capture(self) -> None:
        self.calls["capture"] += 1
        if self.fail_capture:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.graph = object()

    def _replay(self) -> None:
        self.calls["replay"] += 1
        self.optimizer.zero_grad(set_to_none=False)
        self.static_loss = self._compute(self.static_x)


def _net(name: str = "vae") -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(
        FEATURES, NetworkConfig(name=name, hidden=[8, 4], latent=2), DecoderHead(gaussian=True, min_var=1e-3)
    )


#: the kinds the loop is driven through: their configs (lr 1e-2, batch BATCH)
KINDS = {
    "vae": NetworkConfig(name="vae", hidden=[8, 4], latent=2, lr=1e-2, batch_size=BATCH),
    "deep_svdd": DeepSVDDConfig(name="deep_svdd", hidden=[8, 4], rep_dim=2, lr=1e-2, batch_size=BATCH),
}


def _model(kind: str, cuda_graph: bool, clip: float | None, epochs: int) -> NeuralModel:
    """A model of ``kind`` (seed 0: the VAE's network is ``_net()``) on the CPU, patience 2."""
    cfg = KINDS[kind]
    trainer = TrainerConfig(
        accelerator="cpu", max_epochs=epochs, enable_progress_bar=False, gradient_clip_val=clip, cuda_graph=cuda_graph
    )
    return model_class(cfg)(
        cfg, ScoreConfig(name="likelihood", min_var=1e-3, min_var_share=0.0), trainer, EarlyStoppingConfig(patience=2)
    )


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(ROWS, FEATURES, generator=g), torch.randn(300, FEATURES, generator=g)


def _train(step_cls, epochs: int = 2, clip: float | None = None, **kwargs):
    """A bare loop over ``epochs`` epochs; returns (net, step, per-epoch mean losses)."""
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)

    def loss_fn(x):
        return reconstruction_loss(net, x, likelihood=True, beta=1.0, recon_std=0.01)

    step = step_cls(loss_fn, net.parameters(), opt, clip=clip, **kwargs)
    batches = TensorBatches(_data()[0], BATCH, shuffle=True, seed=0)
    torch.manual_seed(5)  # the VAE's latent noise
    means = []
    for _ in range(epochs):
        step.reset()
        for xb in batches:
            step.step(xb)
        means.append(float(step.mean_loss()))
    return net, step, means


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("clip", [None, 0.5])
def test_the_graph_bookkeeping_matches_eager_steps_exactly(clip):
    eager_net, eager, eager_means = _train(GraphedStep, clip=clip, graph=False)
    net, fake, means = _train(FakeGraph, clip=clip)
    assert not eager.graphed and eager.graph is None
    assert means == eager_means and _same_weights(net, eager_net)
    # 2 epochs × 7 full batches: 3 warm-up steps, 1 capture (replayed once), 10 replays; the 2 short batches eager
    assert fake.calls == {"warmup": 3, "capture": 1, "replay": 11}
    assert fake.batch_size == BATCH and fake.static_x.shape == (BATCH, FEATURES)
    assert fake.rows == ROWS and eager.rows == ROWS


def test_the_epoch_loss_sum_is_zeroed_in_place():
    _, fake, _ = _train(FakeGraph, epochs=1)
    total = fake.total
    ptr = total.data_ptr()
    fake.reset()
    assert fake.total is total and total.data_ptr() == ptr and float(total) == 0.0 and fake.rows == 0


def test_a_failed_capture_trains_on_eagerly(caplog):
    eager_net, _, eager_means = _train(GraphedStep, graph=False)
    with caplog.at_level(logging.WARNING, logger="kddad.models.graphed"):
        net, fake, means = _train(FakeGraph, fail_capture=True)
    assert "CUDA graph capture failed (RuntimeError: operation not permitted" in caplog.text
    assert not fake.graphed and fake.calls == {"warmup": 3, "capture": 1, "replay": 0}
    assert means == eager_means and _same_weights(net, eager_net)


def test_warmup_is_at_least_one_step():
    """Adam creates its state on its first step; inside a capture that would be replayed every step."""
    _, fake, _ = _train(FakeGraph, epochs=1, warmup=0)
    assert fake.warmup == 1 and fake.calls["warmup"] == 1


def test_graphs_only_for_32_bit_training_on_cuda():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert "not cuda" in graph_blocker(cpu, "32-true")
    assert "cuda_graph is off" in graph_blocker(cuda, "32-true", enabled=False)
    assert "precision 16-mixed" in graph_blocker(cuda, "16-mixed")
    assert "precision bf16-mixed" in graph_blocker(cuda, "bf16-mixed")
    assert "2 devices" in graph_blocker(cuda, "32-true", world_size=2)
    if not torch.cuda.is_available():
        assert graph_blocker(cuda, "32-true") == "CUDA is not available"
    steps = GraphedStep(lambda x: x.sum(), [torch.nn.Parameter(torch.zeros(1))], torch.optim.Adam([torch.zeros(1)]))
    assert not steps.graphed and steps.stream is None  # on the CPU: eager, no CUDA call


# -- the shared loop, through the model kinds ------------------------------------------------------


class _Steps(Callback):
    """Each epoch's weights (validation has run by on_train_epoch_end), the step count, the graph and
    the optimizer Lightning held at the end."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_end(self, trainer, module):
        self.states.append({k: v.detach().clone() for k, v in module.network.state_dict().items()})

    def on_train_end(self, trainer, module):
        self.global_step = trainer.global_step
        self.graphed_at_end = module._graphed
        self.optimizer = trainer.optimizers[0]


def _fit(cuda_graph: bool, clip: float | None = None, epochs: int = 4, val_scale: float = 1.0, kind: str = "vae"):
    X, X_val = _data()
    X_val = X_val * val_scale  # 0.2: validation gets worse from the first epoch; early stopping keeps that one
    model, steps = _model(kind, cuda_graph, clip, epochs), _Steps()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = model.fit(X.numpy(), X_val.numpy(), callbacks=[steps])
    return model.network, history, steps


@pytest.mark.parametrize("clip", [None, 0.5])
def test_cuda_graph_changes_nothing_on_the_cpu(clip):
    """Plain Adam and the eager step either way: the same history and weights, bit for bit."""
    net_on, hist_on, _ = _fit(True, clip)
    net_off, hist_off, _ = _fit(False, clip)
    assert hist_on == hist_off and len(hist_on) == 4
    assert _same_weights(net_on, net_off)


def test_the_vae_fit_is_the_network_fitted_by_the_loop():
    """The model builds the network the tests' own construction builds (same seed, same weights)."""
    model = _model("vae", False, None, 1)
    torch.manual_seed(0)
    assert _same_weights(model.build(FEATURES), _net())


@pytest.fixture
def fake_graphs(monkeypatch) -> list[FakeGraph]:
    """Graphed steps on the CPU: the loop believes it may graph, and gets FakeGraphs (listed here)."""
    made: list[FakeGraph] = []

    def fake(*args, **kwargs):
        made.append(FakeGraph(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(
        training, "graph_blocker", lambda device, precision, enabled, world_size: None if enabled else "off"
    )
    monkeypatch.setattr(training, "GraphedStep", fake)
    return made


def _check_graphed_fit(made: list[FakeGraph], val_scale: float, kind: str) -> tuple[int, int, torch.nn.Module]:
    """The graphed fit against the eager one; returns (best epoch, epochs, the graphed fit's network)."""
    made.clear()
    net_eager, hist_eager, steps_eager = _fit(False, val_scale=val_scale, kind=kind)
    net, hist, steps = _fit(True, val_scale=val_scale, kind=kind)
    (step,) = made
    opt = step.optimizer
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["capturable"] and opt.defaults["fused"]
    # Lightning steps a ClosureOptimizer (the closure is the whole graphed step, run once a step)
    assert isinstance(steps.optimizer, ClosureOptimizer) and isinstance(steps_eager.optimizer, torch.optim.Adam)
    epochs = len(hist)
    assert step.calls["capture"] == 1 and step.calls["replay"] == epochs * 7 - 3
    assert steps.global_step == steps_eager.global_step == epochs * 8
    assert steps.graphed_at_end is not None and step.graph is None  # released in on_train_end
    assert [r["epoch"] for r in hist] == [r["epoch"] for r in hist_eager]
    for key in ("train_loss", "val_loss"):
        assert [r[key] for r in hist] == pytest.approx([r[key] for r in hist_eager], rel=1e-4)
    best = min(range(epochs), key=lambda i: hist[i]["val_loss"])
    assert all(torch.equal(v, steps.states[best][k]) for k, v in net.state_dict().items())
    return best, epochs, net


def test_the_module_drives_a_graphed_step(fake_graphs):
    """The module's graphed path, with FakeGraph for the graph: same history as the eager path (up
    to fused vs plain Adam), same global step, the graph released before teardown, and the best
    epoch's weights loaded back into the network's own parameters."""
    for val_scale in (1.0, 0.2):
        best, epochs, _ = _check_graphed_fit(fake_graphs, val_scale, "vae")
        assert (best, epochs) == ((3, 4) if val_scale == 1.0 else (0, 3))  # 0.2: not the last epoch's weights


def test_a_kind_whose_loss_is_no_reconstruction_drives_the_same_graphed_step(fake_graphs):
    """Deep SVDD through the unmodified loop: graphed as the VAE is; its centre, a buffer set from the
    training rows before the first epoch, is no parameter and stays where it was set."""
    _, _, net = _check_graphed_fit(fake_graphs, 1.0, "deep_svdd")
    model = _model("deep_svdd", False, None, 1)
    torch.manual_seed(0)
    model.network = model.build(FEATURES)
    model.prepare(_data()[0])
    assert "center" not in dict(net.named_parameters()) and torch.equal(net.center, model.network.center)


def test_the_setting_validates(cfg):
    assert cfg.trainer.cuda_graph is True
    raw = cfg.model_dump()
    raw["trainer"]["cuda_graph"] = False
    assert config.validate(raw).trainer.cuda_graph is False
    raw["trainer"]["cuda_graph"] = "sometimes"
    with pytest.raises(ConfigError, match="trainer.cuda_graph"):
        config.validate(raw)


def test_the_setting_is_not_passed_to_lightning(monkeypatch):
    seen = {}
    real = training.pl.Trainer

    def trainer(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(training.pl, "Trainer", trainer)
    _fit(True, epochs=1)
    assert "cuda_graph" not in seen and "gradient_clip_val" not in seen


def test_training_sweeps_the_checkpoint_folders_of_killed_trainings(tmp_path, monkeypatch):
    """A training killed with -9 leaves its checkpoint folder in the temp folder; the next one removes
    the folders of processes that are gone, and leaves those of live ones."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = _dead_pid()
    stale = tmp_path / f"{training.CHECKPOINT_PREFIX}{gone}-abc"
    live = tmp_path / f"{training.CHECKPOINT_PREFIX}1-abc"  # init: alive
    for folder in (stale, live):
        folder.mkdir()
        (folder / "epoch=0-step=1.ckpt").write_bytes(b"x")
    _fit(cuda_graph=False, epochs=1)
    assert not stale.exists() and live.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]  # its own folder is gone too


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
