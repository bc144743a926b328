"""Hydra glue for pipelines/experiment.py: one job, and MLflow parent/child runs for sweeps.

A multirun opens a parent run (``MlflowSweepCallback``), every job a child run nested under it
and tagged with the sweep id and its overrides. At the end of the sweep the parent gets a
summary: all jobs grouped over seeds, mean ± std of each metric (CSV and Markdown), and a chart
of the main metric per configuration. A failed job is recorded as FAILED and the sweep goes on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from kddad import config
from kddad.entry import signal_exit, user_errors
from kddad.errors import ConfigError, KddadError, TrackingError
from kddad.paths import SWEEP_CACHE, SWEEP_PARENT, SWEEP_SUMMARY, Paths
from kddad.tracking import COMMAND_ENV, Tracker, command_line

log = logging.getLogger(__name__)

SUMMARY_METRICS = (
    "f1",
    "precision",
    "recall",
    "roc_auc",
    "pr_auc",
    "macro_roc_auc",  # over attack categories, held-out attacks against test normals
    "macro_recall",
    "roc_auc.r2l",  # held-out attacks against test normals
    "threshold_batch.roc_auc",
    # per category, off the test split (except under alibi_example and dagmm, which have no
    # separate threshold pool: there it is the test's attacks)
    "threshold_pool.macro_roc_auc",
)
#: The summary figure's panels, one a headline metric: (metric, axis label)
CHART_METRICS = (
    ("f1", "test F1"),
    ("roc_auc", "test ROC-AUC"),
    ("macro_roc_auc", "macro ROC-AUC (held-out attacks)"),
    ("roc_auc.r2l", "R2L ROC-AUC (held-out attacks)"),
)
#: What summarise writes into the sweep's summary folder (and logs into the parent run)
SUMMARY_MD, SUMMARY_CSV, JOBS_CSV, SUMMARY_CHART = "summary.md", "summary.csv", "jobs.csv", "summary.png"
SUMMARY_FILES = (SUMMARY_MD, SUMMARY_CSV, JOBS_CSV, SUMMARY_CHART)
#: What a job returns to the sweeper (Optuna maximises it): labelled, but never the test split.
OBJECTIVE = "threshold_batch.roc_auc"


def _config(cfg: DictConfig) -> config.Config:
    raw = OmegaConf.to_container(cfg, resolve=False)
    raw.pop("hydra", None)
    return config.validate(OmegaConf.to_container(OmegaConf.create(raw), resolve=True), source="composed config")


def cache_dir() -> Path:
    return Path(os.environ.get("KDDAD_CACHE") or SWEEP_CACHE).resolve()  # unset or empty: the default


def _searches(sweeper: Any) -> bool:
    return "optuna" in str(sweeper.get("_target_", "")).lower()


def _refuse_tuning_on_test(sweeper: Any, protocol: str) -> None:
    """Under split=dagmm the threshold batch is the test set: a search there would tune on test."""
    if _searches(sweeper) and protocol == "dagmm":
        raise ConfigError(
            "split.protocol=dagmm: its threshold batch is the test set, so the objective "
            f"({OBJECTIVE}) is a test figure; run searches on split=default and apply the result"
        )


def run_job(cfg: DictConfig) -> float:
    """One job: the whole chain; returns the objective (NaN for a failed sweep job, which is recorded).

    A single run (no ``-m``) that fails on a user's error ends with one line and exit code 2.
    """
    if HydraConfig.get().mode == RunMode.RUN:
        with user_errors():
            return _job(cfg)
    with signal_exit():  # a sweep's job records a user's error and the sweep goes on; a signal ends it
        return _job(cfg)


def _job(cfg: DictConfig) -> float:
    from kddad.stages.chain import run_chain
    from kddad.stages.model import recorded_run

    valid = _config(cfg)  # a bad config fails the job at once, naming the key
    hc = HydraConfig.get()
    _refuse_tuning_on_test(hc.sweeper, valid.split.protocol)
    workdir = Path(hc.runtime.output_dir)
    parent, tags = None, {"overrides": " ".join(hc.overrides.task)}
    if hc.mode == RunMode.MULTIRUN:
        sweep_dir = Path(hc.sweep.dir)
        tags["sweep_id"] = sweep_dir.name
        tags["job"] = str(hc.job.num)
        parent_file = sweep_dir / SWEEP_PARENT
        if parent_file.is_file():  # the parent's store, resolved once where the sweep was launched
            opened = json.loads(parent_file.read_text())
            parent = opened["run_id"]
            valid = _with_uri(valid, opened["tracking_uri"])
    tracker = Tracker(valid.tracking).connect()  # before any work: an unreachable store fails now
    try:
        metrics = run_chain(valid, workdir, cache_dir(), parent_run=parent, run_tags=tags)
    except Exception as err:  # record it and let the sweep go on (a single run reports it as it ends)
        if hc.mode == RunMode.MULTIRUN:
            log.error("job failed: %s: %s", tags["overrides"], err, exc_info=not isinstance(err, KddadError))
        done = Paths(workdir)
        run_id = recorded_run(done.threshold) or recorded_run(done.run_record)
        if tracker.enabled and not isinstance(err, TrackingError):
            tracker.fail(run_id or tracker.start(valid, parent=parent, tags=tags), err)
        if _searches(hc.sweeper) or hc.mode == RunMode.RUN:
            raise  # Optuna records the trial as FAIL from the exception (a NaN return crashes its sweeper)
        return math.nan
    value = metrics
    for part in OBJECTIVE.split("."):
        value = value[part]
    return float(value)


def _with_uri(cfg: config.Config, uri: str) -> config.Config:
    """``cfg`` with its tracking store pinned to ``uri`` (absolute: the same wherever a job runs)."""
    return cfg.model_copy(update={"tracking": cfg.tracking.model_copy(update={"uri": uri})})


def _labels(overrides: list[str]) -> list[str]:
    """Each job's swept settings (the keys whose values differ between jobs), seed left out."""
    parsed = [dict(o.split("=", 1) for o in ov.split() if "=" in o) for ov in overrides]
    keys = sorted({k for p in parsed for k in p})
    swept = [k for k in keys if len({p.get(k) for p in parsed}) > 1 and k.lstrip("+") != "seed"]
    return [" ".join(f"{k}={p.get(k, '-')}" for k in swept) or "(one configuration)" for p in parsed]


def summarise(tracker: Tracker, parent: str, out: Path) -> Any:
    """Child runs of ``parent`` grouped over seeds: mean ± std per metric; CSV, Markdown, chart."""
    import pandas as pd

    runs = tracker.child_runs(parent)
    labels = _labels([r.data.tags.get("overrides", "") for r in runs])
    rows = [
        {
            "run_id": r.info.run_id,
            "status": r.info.status,
            "configuration": label,
            "overrides": r.data.tags.get("overrides", ""),
            **{m: r.data.metrics.get(m, math.nan) for m in SUMMARY_METRICS},
        }
        for r, label in zip(runs, labels)
    ]
    jobs = pd.DataFrame(rows, columns=["run_id", "status", "configuration", "overrides", *SUMMARY_METRICS])
    out.mkdir(parents=True, exist_ok=True)
    jobs.to_csv(out / JOBS_CSV, index=False)
    ok = jobs[jobs["status"] == "FINISHED"]
    grouped = ok.groupby("configuration")[list(SUMMARY_METRICS)].agg(["mean", "std", "count"])
    summary = pd.DataFrame(index=grouped.index)
    for m in SUMMARY_METRICS:
        summary[f"{m}_mean"] = grouped[(m, "mean")]
        summary[f"{m}_std"] = grouped[(m, "std")].fillna(0.0)
    summary["seeds"] = grouped[(SUMMARY_METRICS[0], "count")]
    summary["failed"] = (
        jobs[jobs["status"] != "FINISHED"].groupby("configuration").size().reindex(summary.index, fill_value=0)
    )
    summary = summary.sort_values(f"{OBJECTIVE}_mean", ascending=False)  # ranked on validation, not test
    summary.to_csv(out / SUMMARY_CSV)
    seeded = bool(len(summary)) and int(summary["seeds"].max()) > 1
    lines = [
        f"Best by {OBJECTIVE} (labelled data off the test split): {summary.index[0]}" if len(summary) else "",
        "",
        "Mean ± std over seeds." if seeded else "One run a configuration (no seeds to average).",
        "",
        "| configuration | " + " | ".join(SUMMARY_METRICS) + " | seeds |",
        "|---" * (len(SUMMARY_METRICS) + 2) + "|",
    ]
    for conf, r in summary.iterrows():
        cells = [
            f"{r[f'{m}_mean']:.4f} ± {r[f'{m}_std']:.4f}" if r["seeds"] > 1 else f"{r[f'{m}_mean']:.4f}"
            for m in SUMMARY_METRICS
        ]
        lines.append(f"| {conf} | " + " | ".join(cells) + f" | {int(r['seeds'])} |")
    failed = jobs[jobs["status"] != "FINISHED"]
    if len(failed):
        lines += ["", f"{len(failed)} failed job(s): " + "; ".join(failed["configuration"])]
    if any(r.data.params.get("split.protocol") == "dagmm" for r in runs):
        lines += [
            "",
            f"Ranked by {OBJECTIVE}: under split=dagmm the threshold batch is the test set, so "
            "that ranking is by a test figure.",
        ]
    (out / SUMMARY_MD).write_text("\n".join(lines) + "\n")
    _chart(summary, out / SUMMARY_CHART)
    return summary


def _chart(summary: Any, path: Path) -> None:
    """A panel per headline metric (:data:`CHART_METRICS`): a labelled bar per configuration, in the
    table's order (best by the objective on top), error bars only where seeds were averaged, each
    axis zoomed to its values so that near-equal ROC-AUCs still read apart."""
    import matplotlib.pyplot as plt
    import numpy as np

    from kddad import figures

    n = max(len(summary), 1)
    fig, axes = plt.subplots(1, len(CHART_METRICS), figsize=(4 * len(CHART_METRICS), 0.45 * n + 1.6), sharey=True)
    names = list(summary.index)[::-1]
    for ax, (metric, label) in zip(axes, CHART_METRICS):
        mean = summary[f"{metric}_mean"][::-1].to_numpy(dtype=float)
        std = summary[f"{metric}_std"][::-1].to_numpy(dtype=float)
        seeded = summary["seeds"][::-1].to_numpy() > 1
        ax.barh(names, mean, xerr=np.where(seeded, std, 0.0) if seeded.any() else None, color="#1f77b4")
        finite = mean[np.isfinite(mean)]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            pad = max((hi - lo) * 0.6, 0.002)
            ax.set_xlim(max(0.0, lo - pad), hi + pad)  # room on the right for the value labels
            for y, v in enumerate(mean):
                if np.isfinite(v):
                    ax.text(v, y, f" {v:.4f}", va="center", ha="left", fontsize=8, clip_on=True)
        ax.set(xlabel=label, title=label.split(" (")[0])
    fig.suptitle("Sweep summary" + (": mean ± std over seeds" if (summary["seeds"] > 1).any() else ""))
    figures.save(fig, path)


#: Variables naming folders the jobs read, made absolute where the sweep is launched.
PATH_VARIABLES = ("KDDAD_CACHE", "KDDAD_DATA_MIRROR")
#: Overrides naming a file or folder, made absolute likewise.
PATH_OVERRIDES = ("dataset.path",)


def _absolute_override(overrides: list[str], key: str, value: Path) -> list[str]:
    kept = [o for o in overrides if not o.split("=", 1)[0].lstrip("+~") == key]
    return [*kept, f"{key}='{value}'"]


def anchor_paths(config: DictConfig) -> None:
    """Make what the jobs find by a relative path absolute, resolved where the sweep is launched:
    the sweep folder (and with it the parent run's file), the cache and mirror folders, a local
    data file. A launcher's worker (Ray, SLURM) runs in the folder its node was started in, where
    the relative paths name nothing. Each job's config is composed again from the hydra and task
    overrides, so the absolute paths go in as overrides."""
    for var in PATH_VARIABLES:
        if os.environ.get(var):
            os.environ[var] = str(Path(os.environ[var]).resolve())
    if "KDDAD_CACHE" not in os.environ or not os.environ["KDDAD_CACHE"]:
        os.environ["KDDAD_CACHE"] = str(cache_dir())
    with read_write(config), open_dict(config):
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_absolute():
            config.hydra.sweep.dir = str(sweep_dir.resolve())
            hydra_overrides = list(config.hydra.overrides.hydra)
            config.hydra.overrides.hydra = _absolute_override(hydra_overrides, "hydra.sweep.dir", sweep_dir.resolve())
        task = list(config.hydra.overrides.task)
        for key in PATH_OVERRIDES:
            value = OmegaConf.select(config, key)
            if value and not Path(str(value)).is_absolute() and any(o.split("=", 1)[0] == key for o in task):
                task = _absolute_override(task, key, Path(str(value)).resolve())
        config.hydra.overrides.task = task


class MlflowSweepCallback(Callback):
    """Opens the sweep's parent run before the jobs and writes its summary after them."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ[COMMAND_ENV] = shlex.join(command_line())  # the jobs' runs name the sweep's command
        anchor_paths(config)
        with user_errors():  # a bad config or an unreachable store: one line, exit 2, before any job
            self._open_parent(config)

    def _open_parent(self, config: DictConfig) -> None:
        valid = _config(config)
        _refuse_tuning_on_test(config.hydra.sweeper, valid.split.protocol)
        tracker = Tracker(valid.tracking).connect()
        if not tracker.enabled:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        overrides = " ".join(config.hydra.overrides.task)
        run_id = tracker.open_parent(f"sweep {sweep_dir.name}", {"sweep_id": sweep_dir.name, "sweep": overrides})
        (sweep_dir / SWEEP_PARENT).write_text(json.dumps({"run_id": run_id, "tracking_uri": tracker.uri}))
        log.info("sweep %s: MLflow parent run %s", sweep_dir.name, run_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ.pop(COMMAND_ENV, None)
        sweep_dir = Path(config.hydra.sweep.dir)
        parent_file = sweep_dir / SWEEP_PARENT
        if not parent_file.is_file():
            return
        opened = json.loads(parent_file.read_text())
        parent = opened["run_id"]
        tracker = Tracker(_with_uri(_config(config), opened["tracking_uri"]).tracking)
        out = sweep_dir / SWEEP_SUMMARY
        summary = summarise(tracker, parent, out)
        for name in SUMMARY_FILES:
            tracker.log_artifact(parent, out / name, SWEEP_SUMMARY)
        if len(summary):  # the best configuration by the objective (validation), with its test figures
            best = summary.iloc[0]
            tracker.log_metrics(
                parent,
                {  # named apart from the jobs' metrics, after them in the UI's lists
                    f"sweep.best.{OBJECTIVE}": best[f"{OBJECTIVE}_mean"],
                    "sweep.best.roc_auc": best["roc_auc_mean"],
                    "sweep.best.f1": best["f1_mean"],
                    "sweep.configurations": len(summary),
                },
            )
            tracker.set_tag(parent, "best_configuration", str(summary.index[0]))
            tracker.set_tag(parent, "best_by", OBJECTIVE)
        tracker.finish(parent)
        log.info("sweep %s summary:\n%s", sweep_dir.name, (out / SUMMARY_MD).read_text())
