"""The evaluate stage's log lines: the headline and, per category, what the threshold catches."""

from __future__ import annotations

from typing import Any

from kddad.paths import THRESHOLD_FILE


def headline(metrics: dict[str, Any]) -> str:
    m, held = metrics["test"], metrics["heldout_attacks"]
    return (
        f"evaluate: F1 {metrics['f1']:.4f}, precision {metrics['precision']:.4f}, recall {metrics['recall']:.4f}, "
        f"ROC-AUC {metrics['roc_auc']:.5f}, PR-AUC {metrics['pr_auc']:.5f} on {m['rows']} test rows "
        f"(held-out outliers: recall {held['recall']:.4f} of {held['outliers']})"
    )


def operating_lines(metrics: dict[str, Any]) -> list[str]:
    """The report's table: per category, what the threshold catches and what fixed FPRs would."""
    op, cats = metrics["operating_point"], metrics["heldout_attacks"]["categories"]
    fprs = next((list(v["recall_at_fpr"]) for v in cats.values() if "recall_at_fpr" in v), [])
    lines = [
        f"operating point: threshold {op['threshold']:.6g} ({op['method'] or THRESHOLD_FILE}) flags "
        f"{100 * op['fpr_test_normals']:.2f}% of test normals ({100 * op['fpr_val_normals']:.2f}% of val normals)",
        f"  {'category':<9}{'rows':>9}{'ROC-AUC':>9}{'recall':>8}"
        + "".join(f"{'@FPR ' + format(float(f) * 100, 'g') + '%':>11}" for f in fprs)
        + "   (held-out attacks vs test normals)",
    ]
    for name, v in cats.items():
        if name == "inliers":
            continue
        rows = str(v.get("rows", v.get("categories", ""))) if name != "macro" else f"{v['categories']} cat."
        at = v.get("recall_at_fpr", {})
        lines.append(
            f"  {name:<9}{rows:>9}{v.get('roc_auc', float('nan')):>9.4f}{v['recall']:>8.3f}"
            + "".join(f"{at.get(f, float('nan')):>11.3f}" for f in fprs)
        )
    return lines


def log_lines(metrics: dict[str, Any]) -> list[str]:
    return [headline(metrics), *operating_lines(metrics)]
