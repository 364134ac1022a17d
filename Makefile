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
# The official TF weights and samples (never copied here): README figures, notebook 01, official tests.
OFFICIAL_DIR ?= ../shared/official-lpnet
FIGURES := outputs/figures
# Re-encode a PNG that lpnet wrote as a JPEG (lpnet.io's quality): $(TO_JPEG) SOURCE.png TARGET.jpg
TO_JPEG = $(PY) -c 'import sys; from lpnet.io import read_image, write_image; write_image(sys.argv[2], read_image(sys.argv[1]))'

.PHONY: help install test test-all lint format demo bench notebooks figures clean

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

demo: $(VENV)/.installed  ## train on synthetic heavy rain (~4 min on 2 CPU cores), evaluate, write a before/after grid
	$(PY) -m lpnet.demo $(DEMO_ARGS)

bench: $(VENV)/.installed  ## inference/training benchmark with ratios against the eager reference
	$(PY) -m lpnet.bench

notebooks: $(VENV)/.installed  ## re-run the notebooks and store their outputs (~1 min; 01 uses OFFICIAL_DIR when present)
	LPNET_OFFICIAL_DIR=$(OFFICIAL_DIR) $(PY) notebooks/execute.py

figures: $(VENV)/.installed  ## regenerate the README's figures docs/*.jpg: eval of the official light model on OFFICIAL_DIR's samples, then make demo (~5 min)
	$(PY) -m lpnet.convert source=$(OFFICIAL_DIR)/weights/light_model output=$(FIGURES)/light.pt overwrite=true
	$(PY) -m lpnet.eval ckpt_path=$(FIGURES)/light.pt data.root=$(OFFICIAL_DIR)/test hydra.run.dir=$(FIGURES)/eval
	$(PY) -m lpnet.demo hydra.run.dir=$(FIGURES)/demo $(DEMO_ARGS)
	$(TO_JPEG) $(FIGURES)/eval/before_after.png docs/official_light_samples.jpg
	$(TO_JPEG) $(FIGURES)/demo/before_after.png docs/demo_heavy_synthetic.jpg

clean:  ## remove the virtual environment, caches and run outputs
	rm -rf $(VENV) .pytest_cache .ruff_cache outputs multirun wandb lightning_logs build dist src/*.egg-info
