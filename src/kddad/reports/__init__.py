"""The evaluate stage's report writers, each fed views: metrics.json, alerts, DVC plots, figures, MLflow."""
