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

import dataclasses
import logging
from dataclasses import dataclass
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
#: Protocol grouped's pools, in the order of their shares of [0, 1).
POOLS = ("threshold", "test", "val", "train")


def row_keys(df: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> np.ndarray:
    """64-bit hash of each row's values on ``columns``: equal rows get equal keys."""
    return pd.util.hash_pandas_object(df[list(columns)], index=False).to_numpy()


@dataclass(frozen=True)
class Rows:
    """What a split is decided on, per row of a file: keys and labels, not the rows themselves
    (19 bytes a row, 27 with split.dedupe), so a file of millions of rows is split from one pass over it."""

    group: np.ndarray  # uint64 key on split.group_by's columns
    all41: np.ndarray  # uint64 key on the 41 features (equal keys: equal rows; not row_keys's)
    record: np.ndarray | None  # uint64 key on the features and the label (split.dedupe), else None
    outlier: np.ndarray  # int8, the file's is_outlier
    normal_traffic: np.ndarray  # bool, label == "normal"
    category: np.ndarray  # int8, the attack category's place in fields.CATEGORIES

    @classmethod
    def of(cls, df: pd.DataFrame, cfg: SplitConfig) -> Rows:
        """The rows of a parsed frame (:func:`kddad.data.read.read_kdd`, or one chunk of a file)."""
        group = row_keys(df, cfg.group_columns)
        # equal on all 41 features: equal group keys and equal other features (fewer columns hashed)
        rest = df[[c for c in fields.FEATURES if c not in cfg.group_columns]].assign(_group=group)
        all41 = row_keys(rest, rest.columns)
        return cls(
            group=group,
            all41=all41,
            record=row_keys(df[[fields.LABEL]].assign(_all41=all41), [fields.LABEL, "_all41"]) if cfg.dedupe else None,
            outlier=df[fields.IS_OUTLIER].to_numpy(dtype=np.int8),
            normal_traffic=(df[fields.LABEL] == "normal").to_numpy(),
            category=pd.Categorical(df[fields.CATEGORY], categories=fields.CATEGORIES).codes.astype(np.int8),
        )

    @classmethod
    def concat(cls, parts: list[Rows]) -> Rows:
        """The chunks of one file, in file order."""
        values = {}
        for f in dataclasses.fields(cls):
            arrays = [getattr(p, f.name) for p in parts]
            values[f.name] = None if arrays[0] is None else np.concatenate(arrays)
        return cls(**values)

    def __len__(self) -> int:
        return len(self.outlier)

    def take(self, idx: np.ndarray) -> Rows:
        return Rows(
            **{f.name: None if (v := getattr(self, f.name)) is None else v[idx] for f in dataclasses.fields(self)}
        )


@dataclass(frozen=True)
class Plan:
    """Which rows go where: each split's positions in the main file (in the test file for the
    names in ``from_test``), in the order they are written, and the ``is_outlier`` the main
    file's rows are written with (protocol dagmm relabels by ``split.inlier``)."""

    idx: dict[str, np.ndarray]
    outlier: np.ndarray
    from_test: frozenset[str] = frozenset()
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    kept: int = 0  # rows of the main file after split.dedupe

    def in_file_order(self, name: str) -> bool:
        """Whether split ``name`` takes each row at most once, in file order (it can be written as the file is read)."""
        i = self.idx[name]
        return bool(np.all(np.diff(i) > 0))


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


def _grouped(rows: Rows, cfg: SplitConfig, test: Rows | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Pools of row groups; with ``test`` (protocol test_file) there is no test pool: ``test`` is the test set."""
    rng = np.random.default_rng(cfg.seed)
    _, group = np.unique(rows.group, return_inverse=True)
    u = rng.random(group.max() + 1)[group]  # one uniform draw per group, shared by its rows
    t_end = cfg.pools.threshold
    e_end = t_end + cfg.pools.test
    v_end = e_end + cfg.val_frac * (1 - e_end)
    pool = np.searchsorted([t_end, e_end, v_end], u, side="right").astype(np.int8)  # a place in POOLS
    normal = rows.outlier == 0
    in_pool = {name: pool == i for i, name in enumerate(POOLS)}
    idx: dict[str, np.ndarray] = {}
    for name in ("train", "val"):
        avail = np.flatnonzero(in_pool[name] & normal)
        n = getattr(cfg, name).n
        idx[name] = (
            avail
            if n is None
            else _draw(rng, avail, n, f"split.{name}.n", "normal", "lower it, or leave it null to take them all")
        )
    for name in ("threshold", "test") if test is None else ("threshold",):
        batch: BatchConfig = getattr(cfg, name)
        n = batch.n if batch.n is not None else int(in_pool[name].sum())
        n_norm, n_out = _counts(n, batch.perc_outlier, truncate=False)
        hint = f"lower split.{name}.n or raise split.pools.{name}"
        idx[name] = np.sort(
            np.concatenate(
                [
                    _draw(rng, np.flatnonzero(in_pool[name] & normal), n_norm, f"split.{name}.n={n}", "normal", hint),
                    _draw(
                        rng,
                        np.flatnonzero(in_pool[name] & ~normal),
                        n_out,
                        f"split.{name}.n={n} with perc_outlier={batch.perc_outlier}",
                        "outlier",
                        hint,
                    ),
                ]
            )
        )
    idx[ATTACKS] = np.flatnonzero(in_pool["test"] & ~normal)
    idx[THRESHOLD_ATTACKS] = np.flatnonzero(in_pool["threshold"] & ~normal)
    if test is not None:
        idx["test"] = np.arange(len(test))
        idx[ATTACKS] = np.flatnonzero(test.outlier == 1)
    pools = {
        name: {"groups": int(np.unique(group[in_pool[name]]).size), "rows": int(in_pool[name].sum())}
        for name in ("train", "val", "threshold", "test")
    }
    return idx, {"pools": pools}


def _alibi_batch(normal: pd.Series, outlier: pd.Series, batch: BatchConfig, seed: int) -> np.ndarray:
    """alibi-detect's create_outlier_batch after np.random.seed(seed), on row positions: pandas
    draws the same rows from a series of positions as from the frame they number."""
    rng = np.random.RandomState(seed)
    n_norm, n_out = _counts(batch.n or 0, batch.perc_outlier, truncate=True)
    parts = [
        normal.sample(n=n_norm, replace=n_norm > len(normal), random_state=rng),
        outlier.sample(n=n_out, replace=n_out > len(outlier), random_state=rng),
    ]
    return pd.concat(parts).sample(frac=1, random_state=rng).to_numpy()


def _alibi(rows: Rows, cfg: SplitConfig) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    normal = pd.Series(np.flatnonzero(rows.outlier == 0))
    outlier = pd.Series(np.flatnonzero(rows.outlier == 1))
    idx = {}
    for name in SPLITS:
        batch: BatchConfig = getattr(cfg, name)
        if batch.n is None:
            raise ConfigError(f"split.{name}.n: required with split.protocol=alibi_example (a batch size)")
        idx[name] = _alibi_batch(normal, outlier, batch, cfg.seed if batch.seed is None else batch.seed)
    idx[ATTACKS] = idx[THRESHOLD_ATTACKS] = outlier.to_numpy()
    return idx, {}


def dagmm_anomaly(rows: Rows, cfg: SplitConfig) -> np.ndarray:
    """Protocol dagmm's anomaly class: the attacks, or normal traffic under ``split.inlier: attack``."""
    return rows.normal_traffic if cfg.inlier == "attack" else ~rows.normal_traffic


def _dagmm(rows: Rows, cfg: SplitConfig) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    rng = np.random.default_rng(cfg.seed)
    anomaly = dagmm_anomaly(rows, cfg)
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
    order = rng.permutation(np.concatenate([inliers, anomalies]) if cfg.test_anomalies == "half" else inliers)
    n_train = int(round(len(order) * cfg.train_frac))
    train_half, rest = order[:n_train], order[n_train:]
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
    return idx, {
        "inlier_class": cfg.inlier,
        "anomaly_rows_used": int(len(anomalies)),
        "train_half_rows": int(n_train),
        "threshold_is_test": True,
        "test_anomaly_percent": round(float(share), 4),
    }


def _shared(keys: dict[str, np.ndarray], of: str) -> dict[str, int]:
    """Rows of each other split whose key is the key of some row of split ``of``."""
    ref = np.unique(keys[of])
    return {name: int(np.isin(k, ref).sum()) for name, k in keys.items() if name != of}


def identical_rows(
    frames: dict[str, pd.DataFrame], columns: tuple[str, ...] | list[str], of: str = "train"
) -> dict[str, int]:
    """Rows of each other split equal, on ``columns``, to some row of split ``of``."""
    return _shared({name: row_keys(f, columns) for name, f in frames.items()}, of)


def plan(rows: Rows, cfg: SplitConfig, test: Rows | None = None) -> Plan:
    """Decide every split per ``cfg`` from the rows' keys and labels; ``test``: the test file's
    rows, for protocol ``test_file`` (and only for it)."""
    if (test is not None) != (cfg.protocol == "test_file"):
        raise ConfigError(
            f"split.protocol={cfg.protocol}: protocol test_file needs a test file (dataset.test), and only it takes one"
        )
    kept = np.arange(len(rows))
    if cfg.dedupe:  # the first of each run of rows equal on the features and the label
        kept = np.sort(np.unique(rows.record, return_index=True)[1])
    sub = rows.take(kept) if cfg.dedupe else rows
    if test is not None:
        idx, extra = _grouped(sub, cfg, test)
    else:
        idx, extra = {"grouped": _grouped, "alibi_example": _alibi, "dagmm": _dagmm}[cfg.protocol](sub, cfg)
    from_test = frozenset({"test", ATTACKS} if test is not None else ())
    idx = {name: i if name in from_test else kept[i] for name, i in idx.items()}
    outlier = dagmm_anomaly(rows, cfg).astype(np.int8) if cfg.protocol == "dagmm" else rows.outlier
    return Plan(idx, outlier, from_test, extra, kept=len(kept))


def report(rows: Rows, p: Plan, cfg: SplitConfig, test: Rows | None = None) -> dict[str, Any]:
    """The split's JSON-ready report (reports/split.json), from the rows' keys and labels."""

    def per_split(values: str) -> dict[str, np.ndarray]:
        out = {}
        for name, i in p.idx.items():
            src = test if name in p.from_test else rows
            arr = (src.outlier if src is test else p.outlier) if values == "outlier" else getattr(src, values)
            out[name] = arr[i]
        return out

    outliers, cats = per_split("outlier"), per_split("category")
    names = np.array(fields.CATEGORIES, dtype=object)
    group, all41 = per_split("group"), per_split("all41")
    result: dict[str, Any] = {
        "protocol": cfg.protocol,
        "seed": cfg.seed,
        "rows_in": len(rows),
        "duplicates_dropped": len(rows) - p.kept,
        "group_by": cfg.group_by,
        "rows": {k: len(v) for k, v in p.idx.items()},
        "outliers": {k: int(v.sum()) for k, v in outliers.items()},
        "outlier_frac": {k: round(float(v.mean()), 6) if len(v) else 0.0 for k, v in outliers.items()},
        "categories": {
            k: {str(c): int(n) for c, n in pd.Series(names[v]).value_counts().items()} for k, v in cats.items()
        },
        "identical_to_train": {"on_group_by": _shared(group, "train"), "on_all41": _shared(all41, "train")},
        "test_identical_to_threshold": _shared({"threshold": group["threshold"], "test": group["test"]}, "threshold")[
            "test"
        ],
        **p.extra,
    }
    test_normal = group["test"][outliers["test"] == 0]
    leaked = _shared({"train": group["train"], "test": test_normal}, "train")["test"]
    result["test_normals_identical_to_train_frac"] = round(leaked / max(len(test_normal), 1), 6)
    overlap = result["identical_to_train"]["on_group_by"]
    if any(overlap.values()):
        log.warning(
            "LEAKAGE: rows identical to a training row (on %d group_by columns): %s; "
            "%.1f%% of test inliers repeat a training row",
            len(cfg.group_columns),
            overlap,
            100 * result["test_normals_identical_to_train_frac"],
        )
    else:
        log.info(
            "no evaluation row is identical to a training row (on the %d group_by columns)", len(cfg.group_columns)
        )
    return result


def split(
    df: pd.DataFrame, cfg: SplitConfig, test: pd.DataFrame | None = None
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Split parsed rows per ``cfg``; returns the frames (:data:`ALL_SPLITS`) and a JSON-ready report.

    ``test``: the parsed test file, for protocol ``test_file`` (and only for it). The split stage
    decides the same from one pass over the file and writes as it reads a second time
    (:mod:`kddad.data.split_files`); this is that split for rows already in memory.
    """
    rows = Rows.of(df, cfg)
    test_rows = None if test is None else Rows.of(test, cfg)
    p = plan(rows, cfg, test_rows)
    if cfg.protocol == "dagmm":
        df = df.assign(**{fields.IS_OUTLIER: p.outlier})
    frames = {name: (test if name in p.from_test else df).iloc[i].reset_index(drop=True) for name, i in p.idx.items()}
    return frames, report(rows, p, cfg, test_rows)
