# VTS — the two README commands are `make run` and `make test`; the rest is for developers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STAGE ?= dev

.DEFAULT_GOAL := help
.PHONY: help setup run test lint type bench check clean package deploy

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt scripts/setup.sh scripts/setup_system.sh package-lock.json $(wildcard frontend/*.* frontend/dashboard/*)
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
	@$(BIN)/python bench/run_all.py --record docs/BENCHMARKS.md

check: lint type test ## lint, types and tests

# ---- AWS (docs/deploy.md) ----------------------------------------------------------------
REGION ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),us-east-1)
STACK ?= vts-$(STAGE)
BUCKET ?=
PARAMS ?=

package: $(STAMP) ## build/$(STAGE)/sam.json + zip for AWS, checked and cfn-linted (no credentials)
	@AWS_DEFAULT_REGION=$(REGION) $(BIN)/python scripts/build_template.py --stage $(STAGE) --package build/$(STAGE)

deploy: ## deploy STAGE to AWS: BUCKET=<s3 bucket for the code> [PARAMS='K=V ...']
	@test -n "$(BUCKET)" || { echo "make deploy: set BUCKET=<an S3 bucket in $(REGION)>" >&2; exit 2; }
	@$(MAKE) --no-print-directory package STAGE=$(STAGE) REGION=$(REGION)
	aws cloudformation package --region $(REGION) --template-file build/$(STAGE)/sam.json \
		--s3-bucket $(BUCKET) --s3-prefix $(STACK) --output-template-file build/$(STAGE)/packaged.yaml
	aws cloudformation deploy --region $(REGION) --template-file build/$(STAGE)/packaged.yaml \
		--stack-name $(STACK) --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
		--no-fail-on-empty-changeset $(if $(PARAMS),--parameter-overrides $(PARAMS))

clean: ## remove the virtual environment and local data
	rm -rf $(VENV) .vts .data
