# One command to set up and run the pipeline (`make run`), one to set up and run the tests (`make test`).
PYTHON ?= python3
# A package index for torch, e.g. https://download.pytorch.org/whl/cpu for a CPU-only build elsewhere.
TORCH_INDEX ?=
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup run test test-fast lint browser params peers clean

setup: $(VENV)/.installed

# Re-installs only when the project's metadata changes. The pinned CPU torch goes in first:
# an unpinned torch would pull a multi-GB CUDA build (PyPI serves CUDA builds of this version to GPU users).
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

run: setup
	$(BIN)/dvc repro

# ruff first (lint, then format), then every test on two workers (pytest-xdist), handed out test by
# test, the slowest files first (tests/conftest.py orders them).
test: setup lint browser
	$(BIN)/python -m pytest -n 2 --dist load

test-fast: setup lint
	$(BIN)/python -m pytest -m "not slow"

# The system's Chromium, which tests/test_mlflow_ui.py drives (Playwright cannot download browsers
# everywhere): Debian's package where it is missing (as root, else through sudo).
browser:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) sh -c 'apt-get update -qq && apt-get install -y -qq chromium'; } || \
		{ echo "chromium not found: install it with your system's package manager (tests/test_mlflow_ui.py drives it)"; exit 1; }

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The peer detectors of bench/peers.py (PyOD, DeepOD) beside ours, on the default split, 3 seeds
# (hours on a laptop's CPU: pick with e.g. PEERS_ARGS="--seeds 0 --peers PCA IForest").
# DeepOD's metadata pins a torch this project cannot run on; its code runs on ours: --no-deps.
PEERS_ARGS ?=
peers: setup
	$(BIN)/python -m pip install -q -e ".[dev,peers]"
	$(BIN)/python -m pip install -q --no-deps "deepod==0.4.1"
	$(BIN)/python bench/peers.py $(PEERS_ARGS)

# Regenerate params.yaml as the default composition of conf/ (exactly what `dvc exp run` writes),
# and docs/configuration.md from the schema.
params: setup
	$(BIN)/python -m kddad.config --write params.yaml
	$(BIN)/python -m kddad.config --reference docs/configuration.md

clean:
	rm -rf data models reports
