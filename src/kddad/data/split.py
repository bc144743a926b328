"""Split parsed KDD rows into train / val / threshold / test.

``grouped`` (default, leakage-free): rows equal on the ``group_by`` columns form a group, and a
group lands whole in one pool: the threshold pool, the test pool or the train pool (train and
val, normal rows only). The labelled batches are drawn without replacement from their own pool.

``test_file`` (NSL-KDD's official protocol): the test set is a file of its own, used whole
(KDDTest+); the main file (KDDTrain+) is pooled as under ``grouped`` without a test pool, so its
normal rows train and validate and the threshold batch comes from its remaining rows.

``alibi_example`` (reference only, leaks): alibi-detect's ``create_outlier_batch`` sampling,
every batch drawn from the same rows, so evaluation rows repeat training rows.

``dagmm`` (for comparison with published tables): the protocol of DAGMM (Zong et al., 2018),
followed by GOAD and NeuTraL AD. A random half of the rows is the training half, and only its
inlier rows train (less ``val_frac`` of them for early stopping); the other half is the test
set, and the threshold flags the top ``threshold.perc_outlier`` % of the test scores (the
threshold batch *is* the test set, as in the papers). ``inlier: attack`` makes normal traffic
the anomaly class (KDDCUP: it is the 20 % minority); ``outlier_frac`` first subsamples the
anomaly class to that share of all rows (KDDCUP-Rev: attacks at 20 %). ``test_anomalies: all``
is GOAD's and NeuTraL AD's code instead: half of the inliers train, the test set is the other
half plus every anomaly row (about a third of it), and the papers set the threshold at that
true share. Rows are split one by one, so duplicates land on both sides: the report counts them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from kddad.config import BatchConfig, SplitConfig
from kddad.data import fields
from kddad.errors import ConfigError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "threshold", "test")
#: Every attack row held out from training and thresholding (the test pool's, or all of them
#: under alibi_example): the evaluate stage's second view, where rare attack types count.
ATTACKS = "attacks"
#: Every attack row of the threshold pool: beside the threshold batch's normals, the labelled
#: data where choices about rare categories can be made without the test split.
THRESHOLD_ATTACKS = "threshold_attacks"
ALL_SPLITS = (*SPLITS, ATTACKS, THRESHOLD_ATTACKS)


def row_keys(df: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> np.ndarray:
    """64-bit hash of each row's values on ``columns``: equal rows get equal keys."""
    return pd.util.hash_pandas_object(df[list(columns)], index=False).to_numpy()


def _counts(n: int, perc_outlier: float, truncate: bool) -> tuple[int, int]:
    """(normal, outlier) rows for a batch of n; alibi-detect truncates both with int()."""
    if truncate:
        return int((100 - perc_outlier) * 0.01 * n), int(perc_outlier * 0.01 * n)
    n_out = int(round(n * perc_outlier / 100))
    return n - n_out, n_out


def _draw(rng: np.random.Generator, idx: np.ndarray, k: int, key: str, what: str, hint: str) -> np.ndarray:
    if k > len(idx):
        raise ConfigError(f"{key}: needs {k} {what} rows, but only {len(idx)} are available; {hint}")
    return np.sort(rng.choice(idx, size=k, replace=False))


def _grouped(
    df: pd.DataFrame, cfg: SplitConfig, test: pd.DataFrame | None = None
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Pools of row groups; with ``test`` (protocol test_file) there is no test pool: ``test`` is the test set."""
    rng = np.random.default_rng(cfg.seed)
    _, group = np.unique(row_keys(df, cfg.group_columns), return_inverse=True)
    u = rng.random(group.max() + 1)[group]  # one uniform draw per group, shared by its rows
    t_end = cfg.pools.threshold
    e_end = t_end + cfg.pools.test
    v_end = e_end + cfg.val_frac * (1 - e_end)
    pool = np.select([u < t_end, u < e_end, u < v_end], ["threshold", "test", "val"], "train")
    normal = df[fields.IS_OUTLIER].to_numpy() == 0
    idx: dict[str, np.ndarray] = {}
    for name in ("train", "val"):
        avail = np.flatnonzero((pool == name) & normal)
        n = getattr(cfg, name).n
        idx[name] = (
            avail
            if n is None
            else _draw(rng, avail, n, f"split.{name}.n", "normal", "lower it, or leave it null to take them all")
        )
    for name in ("threshold", "test") if test is None else ("threshold",):
        batch: BatchConfig = getattr(cfg, name)
        in_pool = pool == name
        n = batch.n if batch.n is not None else int(in_pool.sum())
        n_norm, n_out = _counts(n, batch.perc_outlier, truncate=False)
        hint = f"lower split.{name}.n or raise split.pools.{name}"
        idx[name] = np.sort(
            np.concatenate(
                [
                    _draw(rng, np.flatnonzero(in_pool & normal), n_norm, f"split.{name}.n={n}", "normal", hint),
                    _draw(
                        rng,
                        np.flatnonzero(in_pool & ~normal),
                        n_out,
                        f"split.{name}.n={n} with perc_outlier={batch.perc_outlier}",
                        "outlier",
                        hint,
                    ),
                ]
            )
        )
    idx[ATTACKS] = np.flatnonzero((pool == "test") & ~normal)
    idx[THRESHOLD_ATTACKS] = np.flatnonzero((pool == "threshold") & ~normal)
    frames = {name: df.iloc[i].reset_index(drop=True) for name, i in idx.items()}
    if test is not None:
        frames["test"] = test.reset_index(drop=True)
        frames[ATTACKS] = test[test[fields.IS_OUTLIER] == 1].reset_index(drop=True)
    pools = {
        name: {"groups": int(np.unique(group[pool == name]).size), "rows": int((pool == name).sum())}
        for name in ("train", "val", "threshold", "test")
    }
    return frames, {"pools": pools}


def _alibi_batch(normal: pd.DataFrame, outlier: pd.DataFrame, batch: BatchConfig, seed: int) -> pd.DataFrame:
    """alibi-detect's create_outlier_batch after np.random.seed(seed)."""
    rng = np.random.RandomState(seed)
    n_norm, n_out = _counts(batch.n or 0, batch.perc_outlier, truncate=True)
    parts = [
        normal.sample(n=n_norm, replace=n_norm > len(normal), random_state=rng),
        outlier.sample(n=n_out, replace=n_out > len(outlier), random_state=rng),
    ]
    return pd.concat(parts).sample(frac=1, random_state=rng).reset_index(drop=True)


def _alibi(df: pd.DataFrame, cfg: SplitConfig) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    normal = df[df[fields.IS_OUTLIER] == 0]
    outlier = df[df[fields.IS_OUTLIER] == 1]
    frames = {}
    for name in SPLITS:
        batch: BatchConfig = getattr(cfg, name)
        if batch.n is None:
            raise ConfigError(f"split.{name}.n: required with split.protocol=alibi_example (a batch size)")
        frames[name] = _alibi_batch(normal, outlier, batch, cfg.seed if batch.seed is None else batch.seed)
    frames[ATTACKS] = frames[THRESHOLD_ATTACKS] = outlier.reset_index(drop=True)
    return frames, {}


def _dagmm(df: pd.DataFrame, cfg: SplitConfig) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    rng = np.random.default_rng(cfg.seed)
    normal_traffic = df[fields.LABEL].to_numpy() == "normal"
    anomaly = normal_traffic if cfg.inlier == "attack" else ~normal_traffic
    df = df.assign(**{fields.IS_OUTLIER: anomaly.astype("int8")})
    inliers, anomalies = np.flatnonzero(~anomaly), np.flatnonzero(anomaly)
    if cfg.outlier_frac is not None:
        n_anom = int(len(inliers) * cfg.outlier_frac / (1 - cfg.outlier_frac))  # 97,278 / 4 → 24,319
        anomalies = _draw(
            rng, anomalies, n_anom, f"split.outlier_frac={cfg.outlier_frac}", "anomaly", "lower split.outlier_frac"
        )
    if len(anomalies) == 0 or len(inliers) == 0:
        raise ConfigError(
            f"split.inlier={cfg.inlier}: {len(inliers)} inlier and {len(anomalies)} anomaly rows; "
            "the protocol needs both (raise split.outlier_frac, or check the data file)"
        )
    # DAGMM halves all rows (the training half's anomalies go unused); GOAD's code halves the
    # inliers and tests every anomaly row
    rows = rng.permutation(np.concatenate([inliers, anomalies]) if cfg.test_anomalies == "half" else inliers)
    n_train = int(round(len(rows) * cfg.train_frac))
    train_half, rest = rows[:n_train], rows[n_train:]
    test = np.sort(rest if cfg.test_anomalies == "half" else np.concatenate([rest, anomalies]))
    train_in = rng.permutation(train_half[~anomaly[train_half]])
    n_val = int(round(len(train_in) * cfg.val_frac))
    if n_val == 0 or n_val == len(train_in) or not anomaly[test].any() or anomaly[test].all():
        raise ConfigError(
            f"split.train_frac={cfg.train_frac}, split.val_frac={cfg.val_frac}: leave {len(train_in)} "
            f"training inliers ({n_val} for validation) and a test set of {len(test)} rows with "
            f"{int(anomaly[test].sum())} anomalies; each part needs rows of its class"
        )
    share = 100 * anomaly[test].mean()
    if abs(share - cfg.threshold.perc_outlier) > 1:
        log.warning(
            "split.threshold.perc_outlier=%g flags that share of the test scores, which hold %.2f%% anomalies%s",
            cfg.threshold.perc_outlier,
            share,
            " (GOAD's protocol thresholds at the true share)" if cfg.test_anomalies == "all" else "",
        )
    idx = {
        "train": np.sort(train_in[n_val:]),
        "val": np.sort(train_in[:n_val]),
        "threshold": test,
        "test": test,
        ATTACKS: test[anomaly[test]],
        THRESHOLD_ATTACKS: test[anomaly[test]],  # the threshold batch is the test set
    }
    frames = {name: df.iloc[i].reset_index(drop=True) for name, i in idx.items()}
    return frames, {
        "inlier_class": cfg.inlier,
        "anomaly_rows_used": int(len(anomalies)),
        "train_half_rows": int(n_train),
        "threshold_is_test": True,
        "test_anomaly_percent": round(float(share), 4),
    }


def identical_rows(
    frames: dict[str, pd.DataFrame], columns: tuple[str, ...] | list[str], of: str = "train"
) -> dict[str, int]:
    """Rows of each other split equal, on ``columns``, to some row of split ``of``."""
    ref = set(row_keys(frames[of], columns).tolist())
    return {name: int(np.isin(row_keys(f, columns), list(ref)).sum()) for name, f in frames.items() if name != of}


def split(
    df: pd.DataFrame, cfg: SplitConfig, test: pd.DataFrame | None = None
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Split parsed rows per ``cfg``; returns the frames (:data:`ALL_SPLITS`) and a JSON-ready report.

    ``test``: the parsed test file, for protocol ``test_file`` (and only for it).
    """
    if (test is not None) != (cfg.protocol == "test_file"):
        raise ConfigError(
            f"split.protocol={cfg.protocol}: protocol test_file needs a test file (dataset.test), and only it takes one"
        )
    n_in = len(df)
    if cfg.dedupe:
        df = df.drop_duplicates(subset=[*fields.FEATURES, fields.LABEL]).reset_index(drop=True)
    if test is not None:
        frames, extra = _grouped(df, cfg, test)
    else:
        frames, extra = {"grouped": _grouped, "alibi_example": _alibi, "dagmm": _dagmm}[cfg.protocol](df, cfg)
    group_cols = cfg.group_columns
    report: dict[str, Any] = {
        "protocol": cfg.protocol,
        "seed": cfg.seed,
        "rows_in": n_in,
        "duplicates_dropped": n_in - len(df),
        "group_by": cfg.group_by,
        "rows": {k: len(v) for k, v in frames.items()},
        "outliers": {k: int(v[fields.IS_OUTLIER].sum()) for k, v in frames.items()},
        "outlier_frac": {k: round(float(v[fields.IS_OUTLIER].mean()), 6) if len(v) else 0.0 for k, v in frames.items()},
        "categories": {
            k: {str(c): int(n) for c, n in v[fields.CATEGORY].value_counts().items()} for k, v in frames.items()
        },
        "identical_to_train": {
            "on_group_by": identical_rows(frames, group_cols),
            "on_all41": identical_rows(frames, fields.FEATURES),
        },
        "test_identical_to_threshold": identical_rows(
            {"threshold": frames["threshold"], "test": frames["test"]}, group_cols, of="threshold"
        )["test"],
        **extra,
    }
    test = frames["test"]
    test_normal = test[test[fields.IS_OUTLIER] == 0]
    leaked = identical_rows({"train": frames["train"], "test": test_normal}, group_cols)["test"]
    report["test_normals_identical_to_train_frac"] = round(leaked / max(len(test_normal), 1), 6)
    overlap = report["identical_to_train"]["on_group_by"]
    if any(overlap.values()):
        log.warning(
            "LEAKAGE: rows identical to a training row (on %d group_by columns): %s; "
            "%.1f%% of test inliers repeat a training row",
            len(group_cols),
            overlap,
            100 * report["test_normals_identical_to_train_frac"],
        )
    else:
        log.info("no evaluation row is identical to a training row (on the %d group_by columns)", len(group_cols))
    return frames, report
