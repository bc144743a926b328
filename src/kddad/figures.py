"""PNG figures of an evaluation, readable at a glance (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"normal": "#1f77b4", "outlier": "#d62728"}


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion(counts: dict[str, int], path: Path, title: str = "Confusion matrix") -> Path:
    cm = np.array([[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]])
    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, f"{v:,}", ha="center", va="center", fontsize=13, color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks([0, 1], ["normal", "outlier"])
    ax.set_yticks([0, 1], ["normal", "outlier"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return save(fig, path)


def roc(fpr: np.ndarray, tpr: np.ndarray, auc: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot(fpr, tpr, lw=2, label=f"ROC-AUC = {auc:.4f}")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC curve", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    return save(fig, path)


CATEGORY_COLORS = {"dos": "#1f77b4", "probe": "#ff7f0e", "r2l": "#d62728", "u2r": "#9467bd", "normal": "#2ca02c"}


def roc_by_category(curves, categories: dict, fpr_at_threshold: float, path: Path) -> Path:
    """One ROC curve per outlier category (against the same normals), log false-positive axis,
    each marked where the operating threshold puts it: rare categories are not averaged away."""
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    fpr = curves["fpr"].to_numpy()
    low = max(fpr[fpr > 0].min(), 1e-5)
    for name in [c for c in curves.columns if c != "fpr"]:
        info = categories.get(name, {})
        color = CATEGORY_COLORS.get(name)
        label = f"{name}: AUC {info.get('roc_auc', float('nan')):.4f}, {info.get('rows', 0):,} rows"
        ax.plot(np.maximum(fpr, low), curves[name], lw=2, color=color, label=label)
        if "recall" in info:
            ax.plot(max(fpr_at_threshold, low), info["recall"], "o", color=color, ms=7, mec="k")
    ax.axvline(max(fpr_at_threshold, low), color="k", ls=":", lw=1, label=f"threshold: FPR {fpr_at_threshold:.2%}")
    ax.set_xscale("log")
    ax.set(
        xlabel="false-positive rate (normal rows flagged)",
        ylabel="recall of the category",
        title="ROC per attack category (held-out attacks vs test normals)",
        xlim=(low, 1),
        ylim=(0, 1.02),
    )
    ax.legend(loc="lower right", fontsize=8)
    return save(fig, path)


def precision_recall(recall: np.ndarray, precision: np.ndarray, ap: float, base: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot(recall, precision, lw=2, label=f"PR-AUC (AP) = {ap:.4f}")
    ax.axhline(base, color="k", ls="--", lw=1, label=f"outlier share = {base:.2f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left")
    return save(fig, path)


def instance_scores(scores: np.ndarray, classes: np.ndarray, threshold: float, path: Path) -> Path:
    """Score per row against the threshold, coloured by true class (alibi-detect's plot_instance_score)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    idx = np.arange(len(scores))
    for name in ("normal", "outlier"):
        m = classes == name
        ax.scatter(idx[m], scores[m], s=3, alpha=0.5, color=COLORS[name], label=name, rasterized=True)
    ax.axhline(threshold, color="k", lw=1.5, label=f"threshold {threshold:.4g}")
    if scores.min() > 0 and scores.max() / scores.min() > 100:
        ax.set_yscale("log")
    ax.set(xlabel="test row", ylabel="instance score", title="Outlier score per test row")
    ax.legend(markerscale=4, loc="upper right")
    return save(fig, path)


#: Colours of the score histogram's groups: normal traffic and each attack category
GROUP_COLORS = {"normal": "#1f77b4", "dos": "#d62728", "probe": "#ff7f0e", "r2l": "#2ca02c", "u2r": "#9467bd"}


def score_histogram(groups: dict[str, np.ndarray], threshold: float, path: Path, bins: int = 80) -> Path:
    """Each group's score distribution (normal rows, each attack category) against the threshold.

    Every group is a density on shared bins, so a category of eleven rows shows beside one of
    hundreds of thousands; the count axis is logarithmic, and so is the score axis where every
    score is positive and they span more than two decades (floods score orders of magnitude
    above normal traffic). The legend gives each group's rows and the share above the threshold.
    """
    present = {k: np.asarray(v, dtype=np.float64) for k, v in groups.items() if len(v)}
    everything = np.concatenate([*present.values(), [threshold]])
    lo, hi = float(everything.min()), float(everything.max())
    logx = lo > 0 and hi / lo > 100
    edges = np.geomspace(lo, hi, bins + 1) if logx else np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, v in present.items():
        above = float((v > threshold).mean())
        ax.hist(
            v,
            bins=edges,
            density=True,
            histtype="step",
            lw=1.6,
            color=GROUP_COLORS.get(name),
            label=f"{name} ({len(v):,} rows, {above:.1%} above)",
        )
    ax.axvline(threshold, color="k", lw=1.5, ls="--", label=f"threshold {threshold:.4g}")
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel="instance score", ylabel="density (log)", title="Scores of normal rows and of each attack category")
    ax.legend(fontsize=8, loc="lower left", framealpha=0.9)
    return save(fig, path)


def top_features(
    feature_scores: np.ndarray, names: Sequence[str], path: Path, top_rows: int = 50, top_k: int = 15
) -> Path:
    """Mean feature score over the highest-scoring rows: what makes the top outliers outliers."""
    contrib = feature_scores.mean(0)
    order = np.argsort(contrib)[::-1][:top_k][::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(order) + 1.2))
    ax.barh([names[i] for i in order], contrib[order], color=COLORS["outlier"])
    ax.set(xlabel="mean feature score", title=f"Features behind the top {top_rows} outliers")
    return save(fig, path)


def latent_space(z: np.ndarray, classes: np.ndarray, path: Path, pca: bool = False) -> Path:
    """2-D latent codes coloured by class; ``pca``: z was projected onto its two principal axes."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name in ("normal", "outlier"):
        m = classes == name
        ax.scatter(z[m, 0], z[m, 1], s=3, alpha=0.5, color=COLORS[name], label=name, rasterized=True)
    axes = ("PC1 of z", "PC2 of z") if pca else ("z1", "z2")
    ax.set(xlabel=axes[0], ylabel=axes[1], title="Latent space (test rows)" + (", PCA" if pca else ""))
    ax.legend(markerscale=4)
    return save(fig, path)


def loss_curves(history: list[dict[str, float]], path: Path) -> Path:
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", ms=3, label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", ms=3, label="validation (normal)")
    ax.set(xlabel="epoch", ylabel="loss", title="Training curve")
    ax.legend()
    return save(fig, path)
