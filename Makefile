# lpnet — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
# cpu or cuda: the CPU build on machines without an NVIDIA driver, PyPI's CUDA build otherwise.
TORCH ?= $(if $(shell command -v nvidia-smi 2>/dev/null),cuda,cpu)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
# Slow tests run in CI (CI=true) and with `make test-all`; the default suite stays fast.
PYTEST_ARGS ?= $(if $(filter true 1,$(CI)),,-m "not slow")
DEMO_ARGS ?=
APP_ARGS ?=
# The official TF weights and samples, and real rain pairs (never copied here): the README's figures.
OFFICIAL_DIR ?= ../shared/official-lpnet
REAL_RAIN_DIR ?= ../shared/real-rain
FIGURES := outputs/figures
# make weights: the bundled models it retrains (lpnet:<name>, from conf/experiment/weights_<name>.yaml),
# validated (watched, never trained on) on the real sets when REAL_RAIN_DIR holds them (quoted: the shell
# would expand {a,b}).
WEIGHTS ?= heavy light mixed gauge
# The clean photos the rain gauge trains on (make training-photos: Debian's wallpaper photographs, licences in
# lpnet/data/training_photos.py, and the bundled ones).
TRAINING_PHOTOS ?= outputs/training-photos
comma := ,
REAL_VAL = $(if $(wildcard $(REAL_RAIN_DIR)/rain100l-val),'data.real_val={light:$(REAL_RAIN_DIR)/rain100l-val$(comma)heavy:$(REAL_RAIN_DIR)/rain100h-val}' 'data.clean_val={photos:$(REAL_RAIN_DIR)/rain100l-val/norain}')
WEIGHTS_RUNS := outputs/weights
# make ablations: the study's ledger (committed) and its page; FRESH=1 re-runs the whole study from scratch
# into outputs/ablations-fresh/ (the committed ledger is left as it is) to compare with.
FRESH ?=
LEDGER ?= $(if $(filter 1 true,$(FRESH)),outputs/ablations-fresh/ledger,results/ablations)
ABLATIONS_DOCS ?= $(if $(filter 1 true,$(FRESH)),outputs/ablations-fresh,docs)
ABLATIONS_ARGS ?=
# Re-encode a PNG that lpnet wrote as a JPEG (lpnet.io's quality): $(TO_JPEG) SOURCE.png TARGET.jpg
TO_JPEG = $(PY) -c 'import sys; from lpnet.io import read_image, write_image; write_image(sys.argv[2], read_image(sys.argv[1]))'

.PHONY: help install test test-all lint format demo app bench training-photos weights ablations ablations-report notebooks figures clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if [ "$(TORCH)" = cpu ]; then \
	  $(PY) -c 'import torch, sys; sys.exit(not torch.__version__.startswith("$(TORCH_VERSION)+cpu"))' 2>/dev/null \
	  || $(PIP) install "torch==$(TORCH_VERSION)+cpu" \
	  || $(PIP) install "torch==$(TORCH_VERSION)+cpu" --extra-index-url $(TORCH_CPU_INDEX); \
	else \
	  $(PIP) install "torch==$(TORCH_VERSION)"; \
	fi
	$(PIP) install -e ".[dev]"
	@touch $@

install: $(VENV)/.installed  ## create .venv and install lpnet with dev tools (TORCH=cpu|cuda)

test: $(VENV)/.installed  ## run the test suite (slow tests too when CI=true)
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: $(VENV)/.installed  ## run every test, slow ones included
	$(PY) -m pytest

lint: $(VENV)/.installed  ## ruff check + format check
	$(PY) -m ruff check src tests
	$(PY) -m ruff format --check src tests

format: $(VENV)/.installed  ## ruff fix + format
	$(PY) -m ruff check --fix src tests
	$(PY) -m ruff format src tests

demo: $(VENV)/.installed  ## train on synthetic heavy rain (~5 min on 2 CPU cores), score it beside the bundled lpnet:heavy, write a picture of both
	$(PY) -m lpnet.demo $(DEMO_ARGS)

app: $(VENV)/.installed  ## the local web app on http://127.0.0.1:7860 (APP_ARGS='port=8000 models=[mine.pt]'; Ctrl-C stops it)
	$(PY) -m lpnet.app $(APP_ARGS)

bench: $(VENV)/.installed  ## inference/training benchmark with ratios against the eager reference
	$(PY) -m lpnet.bench

training-photos: $(VENV)/.installed  ## the clean photos the rain gauge trains on, into outputs/training-photos (apt-get download of Debian's wallpaper packages, never installed)
	$(PY) -m lpnet.data.training_photos $(TRAINING_PHOTOS)

weights: $(VENV)/.installed $(if $(filter gauge,$(WEIGHTS)),training-photos)  ## retrain the bundled weights lpnet:heavy, lpnet:light, lpnet:mixed, lpnet:gauge from lpnet's synthetic rain only (20-90 min each on 2 CPU cores)
	@set -e; for name in $(WEIGHTS); do \
	  run=$(WEIGHTS_RUNS)/$$name-$$(date +%Y%m%d-%H%M%S); \
	  LPNET_TRAINING_PHOTOS=$(TRAINING_PHOTOS) $(PY) -m lpnet.train experiment=weights_$$name hydra.run.dir=$$run $(REAL_VAL); \
	  $(PY) -m lpnet.convert source=$$run/checkpoints/last.ckpt output=src/lpnet/weights/$$name.pt overwrite=true; \
	done

ablations: $(VENV)/.installed  ## the ablation study: trains what the ledger results/ablations/ lacks (7-20 min a run on 2 CPU cores; stop any time, only the run in progress is lost), then docs/ablations.md (FRESH=1: all of it again, into outputs/)
	$(PY) -m lpnet.study real_rain_dir=$(REAL_RAIN_DIR) ledger=$(LEDGER) $(ABLATIONS_ARGS)
	$(PY) -m lpnet.report input=$(LEDGER) output=$(ABLATIONS_DOCS)

ablations-report: $(VENV)/.installed  ## docs/ablations.md and its plots from the ledger results/ablations/ alone
	$(PY) -m lpnet.report input=$(LEDGER) output=$(ABLATIONS_DOCS)

notebooks: $(VENV)/.installed  ## re-run the notebooks and store their outputs (~1 min; synthetic rain and the bundled weights only)
	$(PY) notebooks/execute.py

figures: $(VENV)/.installed  ## regenerate the README's figures docs/*.jpg: the official light model on its samples (OFFICIAL_DIR), make demo, the default on real rain and real vs rendered rain (REAL_RAIN_DIR), the web app's screenshot docs/app.png (Chromium) (~8 min)
	$(PY) -m lpnet.convert source=$(OFFICIAL_DIR)/weights/light_model output=$(FIGURES)/light.pt overwrite=true
	$(PY) -m lpnet.eval ckpt_path=$(FIGURES)/light.pt data.root=$(OFFICIAL_DIR)/test output=$(FIGURES)/eval
	$(PY) -m lpnet.demo hydra.run.dir=$(FIGURES)/demo $(DEMO_ARGS)
	$(TO_JPEG) $(FIGURES)/eval/before_after.png docs/official_light_samples.jpg
	$(TO_JPEG) $(FIGURES)/demo/before_after.png docs/demo_heavy_synthetic.jpg
	$(PY) docs/default_figure.py $(REAL_RAIN_DIR) $(FIGURES)/default.png
	$(TO_JPEG) $(FIGURES)/default.png docs/default_real_rain.jpg
	$(PY) docs/rain_figure.py $(REAL_RAIN_DIR) $(FIGURES)/rain.png
	$(TO_JPEG) $(FIGURES)/rain.png docs/rain_real_vs_rendered.jpg
	LPNET_SHARED_DIR=$(dir $(abspath $(REAL_RAIN_DIR))) LPNET_REQUIRE_BROWSER=1 LPNET_REQUIRE_SHARED=1 \
	  LPNET_APP_FIGURE=docs/app.png $(PY) -m pytest -q tests/test_app_browser.py -k photo

clean:  ## remove the virtual environment, caches and run outputs
	rm -rf $(VENV) .pytest_cache .ruff_cache outputs multirun wandb lightning_logs build dist src/*.egg-info
