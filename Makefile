# VTS — the two README commands are `make run` and `make test`; the rest is for developers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STAGE ?= dev

.DEFAULT_GOAL := help
.PHONY: help setup run test lint type bench check clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt scripts/setup.sh
	@bash scripts/setup.sh "$(PYTHON)" "$(VENV)"
	@touch $(STAMP)

setup: $(STAMP) ## create .venv, install pinned packages and local data

run: $(STAMP) ## start the local stack with demo data (Ctrl-C stops it)
	@$(BIN)/python scripts/local_stack.py

test: $(STAMP) ## run the whole test suite
	@$(BIN)/python -m pytest

lint: $(STAMP) ## ruff
	@$(BIN)/ruff check .

type: $(STAMP) ## mypy (strict on chalicelib)
	@$(BIN)/mypy chalicelib app.py

bench: $(STAMP) ## run the benchmarks and print their figures
	@$(BIN)/python bench/run_all.py

check: lint type test ## lint, types and tests

clean: ## remove the virtual environment and local data
	rm -rf $(VENV) .vts .data
