# Speech Coach: one-command install, run and test on a fresh clone (only Python 3.11 needed).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install lock run down status test lint format bench soak clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

# One line per step; the longest (uv pip sync: downloads and installs) shows uv's own progress and summary. The
# dbt manifest is built here, as Dagster advises doing at build time, not by the first `make run`.
$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]'
	@echo "==> [1/5] $(VENV) with uv $(UV_VERSION)"
	@# A venv without pip is one whose creation was interrupted: make it again.
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	@echo "==> [2/5] the $$(grep -c '^[A-Za-z0-9].*==' requirements.lock) pinned packages of requirements.lock (uv pip sync)"
	@$(BIN)/uv pip sync --python $(BIN)/python requirements.lock
	@echo "==> [3/5] speech-coach itself, editable"
	@$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@echo "==> [4/5] Flink's Kafka connector jars"
	@$(BIN)/python -m flink_jobs.connectors fetch
	@echo "==> [5/5] the dbt manifest Dagster loads (dbt parse, when the models changed)"
	@$(BIN)/python -c 'from warehouse.dbt import ensure_manifest; print(ensure_manifest())'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the pinned dependencies

# The images' sets are resolved with the dev environment's pins as constraints, so every pin agrees with it.
IMAGE_SETS := bot ingest dagster flink
COMPILE = $(BIN)/uv pip compile -q pyproject.toml --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --generate-hashes --custom-compile-command "make lock"

lock: ## re-resolve requirements.lock (every group) and each image's requirements/<group>.lock from pyproject.toml
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install -q uv==$(UV_VERSION); }
	$(COMPILE) --all-extras -o requirements.lock
	@mkdir -p requirements
	@for set in $(IMAGE_SETS); do \
	  echo "requirements/$$set.lock"; \
	  $(COMPILE) --extra $$set -c requirements.lock -o requirements/$$set.lock || exit 1; \
	done

run: install ## start the local stack and the platform, and print every address
	$(BIN)/speech-coach run

down: install ## stop everything `make run` started
	$(BIN)/speech-coach stack down

status: install ## show the state of each part
	$(BIN)/speech-coach stack status

test: install ## run the test suite against real local servers
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install ## ruff (lint and format check) and mypy on the core package
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install ## run the benchmarks and write docs/benchmarks.md
	$(BIN)/python -m benchmarks

STEPS ?= 2,4,8
DURATION ?= 60
soak: install ## load test: simulated learners in STEPS (learners per step), DURATION s each, through the whole pipeline (docs/benchmarks.md)
	SC_LOAD_STEPS=$(STEPS) SC_LOAD_SECONDS=$(DURATION) $(BIN)/python -m benchmarks load

clean: ## remove the virtualenv and caches (keeps .local data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
