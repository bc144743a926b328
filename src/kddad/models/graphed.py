"""A whole training step (forward, loss, backward, clipping, Adam) replayed as one CUDA graph.

At the default batch size a CUDA step is launch-bound: a few dozen small kernels, each costing
more to launch than to run. Replaying one captured graph launches them all at once (issue 12: a
bare graphed loop ran 8x faster than eager on an H200). Kept apart from the Lightning module, so
that the bookkeeping (static input, warm-up, the shorter last batch) is testable without CUDA.

The capture follows PyTorch's "whole-network capture" recipe (CUDA semantics notes): warm-up
steps on a side stream, gradients set to None before capture so that backward allocates them in
the graph's private pool, then replays that read a static input buffer. RNG ops inside the graph
(the VAE's ``torch.randn``) draw fresh numbers each replay: the default CUDA generator is graph
safe (ATen's "CUDA Graph-safe RNG states" note: a replay advances the generator's offset by the
graph's total, bitwise as eager would).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator

import torch

log = logging.getLogger(__name__)

WARMUP_STEPS = 3  # eager steps before capture; Adam's state must exist before it (at least 1)


def graph_blocker(device: torch.device, precision: str, enabled: bool = True, world_size: int = 1) -> str | None:
    """Why a training step cannot be graphed here (None: it can)."""
    if not enabled:
        return "trainer.cuda_graph is off"
    if device.type != "cuda":
        return f"the device is {device.type}, not cuda"
    if world_size > 1:
        return f"training on {world_size} devices (gradient all-reduce is not captured)"
    if precision not in ("32-true", "32"):
        return (
            f"precision {precision}: only 32-true is captured (mixed precision's gradient scaler "
            "syncs with the host every step)"
        )
    if not torch.cuda.is_available():
        return "CUDA is not available"
    return None


class GraphedStep:
    """One optimisation step per call; full batches replay a CUDA graph, the rest run eagerly.

    ``loss_fn(x)`` returns the batch-mean loss; ``optimizer`` is a raw torch optimizer over
    ``params`` (on CUDA: ``Adam(fused=True, capturable=True)``, whose step runs inside a graph
    and eagerly alike). The graph's batch size is that of the first batch seen, an epoch's full
    batch. The first ``warmup`` full batches train eagerly on a side stream, the next is captured
    and replayed; later full batches are copied into the static input and replayed. A shorter
    batch (an epoch's last) trains eagerly, with the same optimizer. The epoch's loss sum stays on
    the device (:attr:`total`; :meth:`reset` zeroes it in place, as the graph adds to it).

    With ``graph=False`` or off CUDA every step runs eagerly: the same ops, in the same order.
    If capture fails, a warning says why and training goes on eagerly.
    """

    def __init__(
        self,
        loss_fn: Callable[[torch.Tensor], torch.Tensor],
        params: Iterable[torch.nn.Parameter],
        optimizer: torch.optim.Optimizer,
        *,
        clip: float | None = None,
        warmup: int = WARMUP_STEPS,
        graph: bool = True,
    ) -> None:
        self.loss_fn, self.optimizer, self.clip = loss_fn, optimizer, clip
        self.params = list(params)
        self.warmup = max(1, warmup)  # capture must not initialise Adam's state: that would be replayed
        device = self.params[0].device
        self.graphed = graph and device.type == "cuda"
        self.total = torch.zeros((), device=device)  # the epoch's loss sum; fixed address: the graph adds to it
        self.rows = 0
        self.batch_size: int | None = None
        self.warmed = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_x: torch.Tensor | None = None
        self.static_loss: torch.Tensor | None = None
        self.stream = torch.cuda.Stream(device) if self.graphed else None  # warm-up and capture share it

    # -- the step -------------------------------------------------------------------------
    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Train on batch ``x``; returns its (detached) mean loss."""
        n = len(x)
        if self.batch_size is None:
            self.batch_size = n
        if not self.graphed or n != self.batch_size:
            loss = self._eager(x)
        elif self.graph is not None:
            self.static_x.copy_(x)
            self._replay()
            loss = self.static_loss
        elif self.warmed < self.warmup:
            self.warmed += 1
            with self._side_stream():
                loss = self._eager(x)
        else:
            loss = self._capture_and_run(x)
        self.rows += n
        return loss

    def _compute(self, x: torch.Tensor) -> torch.Tensor:
        """Forward, backward, clipping, optimizer step, loss sum: what the graph holds."""
        loss = self.loss_fn(x)
        loss.backward()
        if self.clip:  # foreach on CUDA by default; no host sync (no error_if_nonfinite)
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        loss = loss.detach()
        self.total += loss * len(x)
        return loss

    def _eager(self, x: torch.Tensor) -> torch.Tensor:
        # after capture the .grad tensors are the graph's own: zero them in place, keep them
        self.optimizer.zero_grad(set_to_none=self.graph is None)
        return self._compute(x)

    def _capture_and_run(self, x: torch.Tensor) -> torch.Tensor:
        """Capture the step on ``x``'s shape, then replay it once: capture itself computes nothing."""
        try:
            self.static_x = torch.empty_like(x)
            self.static_x.copy_(x)
            self.optimizer.zero_grad(set_to_none=True)  # backward allocates .grad in the graph's pool
            self._capture()
        except Exception as err:  # an op that cannot be captured: train on, eagerly
            log.warning(
                "CUDA graph capture failed (%s: %s); training on eagerly",
                type(err).__name__,
                str(err).splitlines()[0] if str(err) else "",
            )
            self.graphed, self.graph, self.static_x, self.static_loss = False, None, None, None
            return self._eager(x)
        log.info("training step captured in one CUDA graph (batch %d, after %d warm-up steps)", len(x), self.warmed)
        self._replay()
        return self.static_loss

    # -- the CUDA specifics (the CPU tests stand in for these three) ----------------------
    @contextlib.contextmanager
    def _side_stream(self) -> Iterator[None]:
        """Warm-up runs on a side stream (PyTorch's recipe), ordered after and before the current one."""
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            yield
        torch.cuda.current_stream().wait_stream(self.stream)

    def _capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream):
            self.static_loss = self._compute(self.static_x)
        self.graph = graph

    def _replay(self) -> None:
        self.graph.replay()

    # -- the epoch ------------------------------------------------------------------------
    def reset(self) -> None:
        """A new epoch: the loss sum zeroed in place (the graph holds its address)."""
        self.total.zero_()
        self.rows = 0

    def mean_loss(self) -> torch.Tensor:
        return self.total / max(self.rows, 1)

    def release(self) -> None:
        """Drop the graph and its memory pool (before the parameters move off the device)."""
        self.graph = self.static_x = self.static_loss = None
        self.graphed = False
