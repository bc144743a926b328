"""What a user sees in MLflow's UI, in a real browser: the README's 2-job sweep in a fresh copy of the
repo, the project folder then moved elsewhere, `mlflow ui` started there as docs/tracking.md says,
and headless Chromium on its runs table, a run's page and figures, and the compare page.

One test: its steps share one sweep and one server (a second test could run on another xdist worker
and repeat the sweep). ``KDDAD_SCREENSHOTS=docs/img`` also writes the screenshots docs/ shows."""

import json
import os
import shutil

import numpy as np
import pytest
from helpers.browser import VIEWPORT, browser_page, close_assistant, expand, mlflow_ui, show_columns
from helpers.sweeps import SWEEP, check_sweep, sweep_runs
from helpers.tracked import MAX_METRICS, where_each_went
from matplotlib.image import imread
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

#: The headline columns a user picks in the runs table to compare the jobs
COLUMNS = ("f1", "roc_auc", "macro_roc_auc", "roc_auc.r2l")
SCREENSHOTS_ENV = "KDDAD_SCREENSHOTS"


@pytest.fixture(scope="module")
def moved(clone, tmp_path_factory):
    """The README's 2-job sweep run in a fresh copy of the repo, then the project folder moved to
    another place: (its new path, the user's environment, the sweep's folder name)."""
    clone.run(SWEEP, timeout=900)
    [sweep_dir] = list((clone.path / "outputs" / "sweeps").iterdir())
    check_sweep(MlflowClient(f"sqlite:///{clone.path / 'mlflow.db'}"), sweep_dir, clone.path)
    dst = tmp_path_factory.mktemp("moved") / "kddad"
    shutil.move(clone.path, dst)
    return dst, clone.env, sweep_dir.name


def _shot(page, tmp_path, name: str) -> None:
    """Screenshot the page into ``name`` (and into $KDDAD_SCREENSHOTS) and check it shows something."""
    out = tmp_path / name
    page.screenshot(path=str(out))
    pixels = imread(out)
    assert pixels.shape[:2] == (VIEWPORT["height"], VIEWPORT["width"]) and np.std(pixels[..., :3]) > 0.05
    if os.environ.get(SCREENSHOTS_ENV):
        shutil.copy(out, os.path.join(os.environ[SCREENSHOTS_ENV], name))


def test_a_user_compares_the_sweep_in_the_mlflow_ui_of_the_moved_project(moved, tmp_path):
    path, env, sweep_id = moved
    client = MlflowClient(f"sqlite:///{path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("kddad").experiment_id
    parent, children = sweep_runs(client, sweep_id)
    jobs = {r.info.run_name: r for r in children}
    # a few dozen metrics a run, every other figure of its metrics.json in its tables, found from the
    # moved folder's store (artifact locations relative to the project)
    for run in children:
        report = path / "outputs" / "sweeps" / sweep_id / run.data.tags["job"] / "reports" / "metrics.json"
        where_each_went(client, run.info.run_id, json.loads(report.read_text()), path)
    vae = jobs["model=vae trainer.max_epochs=1"]

    with mlflow_ui(path, env, tmp_path / "ui.log") as url, browser_page() as page:
        # the runs table, on the classic ML view the evaluate stage's link opens
        page.goto(f"{url}/#/experiments/{exp}/runs?workflowType=machine_learning")
        page.get_by_text("matching runs").wait_for()
        close_assistant(page)
        expand(page, parent.info.run_name)
        for name in jobs:  # both jobs under the parent, told apart by their overrides
            page.get_by_role("link", name=name, exact=True).wait_for()
        show_columns(page, COLUMNS)
        for column in COLUMNS:
            assert page.get_by_role("columnheader", name=column, exact=True).count(), column
        shown = page.locator('[col-id="metrics.`f1`"]').all_inner_texts()
        for run in children:
            assert any(t.startswith(f"{run.data.metrics['f1']:.4f}"[:5]) for t in shown), (shown, run.data.metrics)
        _shot(page, tmp_path, "mlflow_runs.png")

        # a run's page: what it is (its description), a few dozen metrics
        page.goto(f"{url}/#/experiments/{exp}/runs/{vae.info.run_id}")
        description = page.get_by_test_id("note-editor-preview-content")
        description.wait_for()
        assert f"Command: {SWEEP}" in description.inner_text()
        assert "Overrides: model=vae trainer.max_epochs=1" in description.inner_text()
        count = page.get_by_text("Metrics (").first.inner_text()
        assert 20 <= int(count.split("(")[1].split(")")[0]) <= MAX_METRICS, count
        _shot(page, tmp_path, "mlflow_run.png")

        # its figures, served from the moved folder
        page.goto(f"{url}/#/experiments/{exp}/runs/{vae.info.run_id}/artifacts")
        page.get_by_text("figures", exact=True).first.click()
        page.get_by_text("score_histogram.png", exact=True).click()
        figure = page.locator("img[src^='blob:']").first
        figure.wait_for()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=figure.element_handle())
        [png] = (path / "mlartifacts").glob(f"{vae.info.run_id}/artifacts/figures/score_histogram.png")
        assert figure.evaluate("img => img.naturalWidth") == imread(png).shape[1]
        _shot(page, tmp_path, "mlflow_figures.png")

        # the compare page of the two jobs: their names, their metrics side by side
        ids = json.dumps([r.info.run_id for r in children])
        page.goto(f"{url}/#/compare-runs?runs={ids}&experiments={json.dumps([exp])}&workflowType=machine_learning")
        page.get_by_text("Comparing 2 Runs").wait_for()
        close_assistant(page)
        for name in jobs:
            page.get_by_text(name, exact=True).first.wait_for()
        for metric in ("f1", "macro_roc_auc"):  # rows of its metrics table (each a link to its chart)
            page.locator(f"a[href*='metric=%22{metric}%22']").first.wait_for()
        page.get_by_text("Show diff only").nth(1).scroll_into_view_if_needed()  # params, metrics, tags
        _shot(page, tmp_path, "mlflow_compare.png")
