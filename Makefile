# PatchPilot: every target sets itself up. Quick start: `make demo`, `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# sam build (no Docker) needs the Lambda runtime's Python on PATH; pyenv here has 3.11 (venv) and 3.13 (Lambda).
ifneq ($(shell command -v pyenv 2>/dev/null),)
export PYENV_VERSION ?= 3.11.7:3.12.1:3.13.0
endif
PYTHON ?= python3.11
VENV := .venv
SAM_VENV := .venv-sam
SCAN_VENV := .venv-scan
BIN := $(VENV)/bin
SAM_BIN := $(SAM_VENV)/bin
SCAN_BIN := $(SCAN_VENV)/bin
FUZZ_EXAMPLES ?= 1000
PIP_FLAGS := --disable-pip-version-check --no-input --quiet
BENCH_SIZES ?= 10,1000,10000
BENCH_BUDGET_S ?= 540
BENCH_IMPORT_REPEATS ?= 3
export SAM_CLI_TELEMETRY := 0

.PHONY: help setup demo test lint typecheck unit runtime-tests cfn-lint validate build bench events clean baselines scan fuzz

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements/dev.txt layers/runtime/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -r requirements/dev.txt
	$(BIN)/pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

$(SAM_VENV)/.installed: requirements/sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_BIN)/pip install $(PIP_FLAGS) -r requirements/sam.txt
	touch $@

$(SCAN_VENV)/.installed: requirements/scan.txt
	$(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_BIN)/pip install $(PIP_FLAGS) -r requirements/scan.txt
	touch $@

setup: $(VENV)/.installed $(SAM_VENV)/.installed $(SCAN_VENV)/.installed ## create both venvs from the pinned requirements

demo: $(VENV)/.installed ## run a whole patch cycle locally (moto + simulated fleet), writes out/demo/summary.json
	$(BIN)/patchpilot simulate --out out/demo

test: lint typecheck unit runtime-tests cfn-lint validate scan build ## every check (what CI runs)

lint: $(VENV)/.installed ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed ## mypy (strict, pydantic plugin)
	$(BIN)/mypy

# Line coverage of the Lambda package by the unit and functional tests: 94.4 % measured (2026-11-29); the floor sits
# just below it, so a change that adds untested Lambda code fails here.
COVERAGE_FLOOR := 94

unit: $(VENV)/.installed ## unit tests (fakes, no network), functional tests (adapters on moto/Stubber), fuzz (fast profile), coverage floor
	$(BIN)/pytest -q -n 2 --cov=patchpilot --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR) tests/unit tests/functional tests/fuzz

runtime-tests: $(VENV)/.installed ## the real ASL and handlers on the local runtime
	$(BIN)/pytest -q -n 2 --dist loadgroup tests/asl tests/e2e

cfn-lint: $(SAM_VENV)/.installed ## cfn-lint with the serverless rules
	$(SAM_BIN)/cfn-lint template.yaml -a cfn_lint_serverless.rules

validate: $(SAM_VENV)/.installed ## sam validate --lint
	$(SAM_BIN)/sam validate --lint --region us-east-1

scan: $(SAM_VENV)/.installed $(SCAN_VENV)/.installed ## checkov on the SAM-translated template: 0 failures (suppressions carry a reason in template.yaml)
	$(SAM_BIN)/python tools/sam_translate.py out/scan/template.json
	$(SCAN_BIN)/checkov -f out/scan/template.json --framework cloudformation --skip-download --compact --quiet

fuzz: $(VENV)/.installed ## hypothesis fuzzing of every handler's input, $(FUZZ_EXAMPLES) examples each, with counts per outcome
	HYPOTHESIS_PROFILE=fuzz FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q tests/fuzz

build: $(SAM_VENV)/.installed ## sam build (no Docker)
	$(SAM_BIN)/sam build --region us-east-1

baselines: $(VENV)/.installed ## validate policy/patch-policy.yaml and render its baselines/windows/schedules into template.yaml
	$(BIN)/python tools/render_baselines.py

bench: $(VENV)/.installed ## issue 12's benchmark: 10/1,000/10,000-instance cycles, each in a fresh process, vs the goals (out/bench/bench.json)
	$(BIN)/python bench/bench_cycle.py --sizes $(BENCH_SIZES) --budget $(BENCH_BUDGET_S) --import-repeats $(BENCH_IMPORT_REPEATS)

events: ## list the sample events (events/), used by tests, the local runtime and sam local invoke
	@find events -name '*.json' | sort

clean: ## remove venvs and build output
	rm -rf $(VENV) $(SAM_VENV) $(SCAN_VENV) .aws-sam out
