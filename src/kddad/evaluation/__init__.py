"""Evaluation: metrics of scores at a threshold (``metrics``) and the named views they are taken on (``views``)."""

from kddad.evaluation.metrics import (
    FPR_TARGETS,
    HEADLINE,
    category_metrics,
    category_roc,
    class_names,
    detection_metrics,
    first_occurrences,
    pr_points,
    recall_at_fpr,
    roc_points,
    thin,
)

__all__ = [
    "FPR_TARGETS",
    "HEADLINE",
    "category_metrics",
    "category_roc",
    "class_names",
    "detection_metrics",
    "first_occurrences",
    "pr_points",
    "recall_at_fpr",
    "roc_points",
    "thin",
]
