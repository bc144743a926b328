"""MLflow's UI served over a project's store, and the system's Chromium to look at it (Playwright)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers.net import free_port, wait_until_answers

#: Debian's chromium package (``make test`` installs it where it is missing)
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1800, "height": 1000}


@contextmanager
def mlflow_ui(project: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """``mlflow ui --backend-store-uri sqlite:///mlflow.db``, as the docs say, started in ``project``
    on a free loopback port: its base URL while the block runs."""
    port = free_port()
    cmd = ["mlflow", "ui", "--backend-store-uri", "sqlite:///mlflow.db", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answers(f"{url}/health", proc, 120, "mlflow ui", log.read_text)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def browser_page() -> Iterator:
    """A page of headless Chromium (the system's browser, driven by Playwright)."""
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        pytest.fail(f"{CHROMIUM} not found: `make test` installs Debian's chromium package (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def close_assistant(page) -> None:
    """Close MLflow's assistant panel where it opened (it covers a third of the page)."""
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count():
        close.first.click()


def show_columns(page, names: tuple[str, ...]) -> None:
    """Tick ``names`` in the runs table's Columns menu, finding each through its search box."""
    page.get_by_role("button", name="Columns").click()
    for name in names:
        page.get_by_placeholder("Search columns").fill(name)
        title = page.locator("[class*=tree-title]", has_text=re.compile(rf"^{re.escape(name)}$"))
        page.locator("[class*=tree-treenode]").filter(has=title).locator("[class*=tree-checkbox]").first.click()
    page.keyboard.press("Escape")


def expand(page, run_name: str) -> None:
    """Open a parent run's row in the runs table, showing its child runs under it."""
    row = page.get_by_role("row").filter(has_text=run_name)
    row.locator('[col-id="attributes.`Run Name`"] button').first.click()
