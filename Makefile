# Two commands on a fresh machine: `make run` serves the mock, `make test` passes the tests.
# Everything they need is installed on first use into .venv (Python) and .tools (npm).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TOOLS  := .tools
HOST   ?= 127.0.0.1
PORT   ?= 8000
STAMP  := $(VENV)/.installed

PRISM_VERSION   := 5.16.0
REDOCLY_VERSION := 2.77.0

.PHONY: install run test lint format bench st contract contract-prism mutants clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

$(TOOLS)/.installed:
	mkdir -p $(TOOLS)
	cd $(TOOLS) && npm install --no-fund --no-audit --silent \
		@stoplight/prism-cli@$(PRISM_VERSION) @redocly/cli@$(REDOCLY_VERSION)
	touch $@

run: $(STAMP)
	$(BIN)/python -m mockserver --host $(HOST) --port $(PORT)

test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP) $(TOOLS)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/openapi-spec-validator openapi.yaml
	$(TOOLS)/node_modules/.bin/redocly lint openapi.yaml

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Schemathesis against a mock you started with `make run` (or any URL: make st URL=...).
URL ?= http://$(HOST):$(PORT)
KEY ?= sk_test_enterprise_0123456789abcdef
st: $(STAMP)
	$(BIN)/st run openapi.yaml --url $(URL) --checks all -H "Authorization: Bearer $(KEY)"

# The contract suite: the mock in-process by default, or any deployment:
#   make contract BASE_URL=https://imageapi.org MAX_BILLABLE=20 JUNIT=contract.xml
# with keys in IMAGEAPI_KEY_FREE, IMAGEAPI_KEY_BASIC, IMAGEAPI_KEY_PRO, IMAGEAPI_KEY_ENTERPRISE.
CONTRACT_ARGS = $(if $(BASE_URL),--base-url $(BASE_URL)) \
	$(if $(MAX_BILLABLE),--max-billable $(MAX_BILLABLE)) $(if $(JUNIT),--junitxml $(JUNIT))
contract: $(STAMP)
	$(BIN)/python -m pytest contract_tests $(CONTRACT_ARGS)

contract-prism: $(STAMP) $(TOOLS)/.installed
	$(BIN)/python scripts/contract_prism.py --prism $(TOOLS)/node_modules/.bin/prism

mutants: $(STAMP)
	$(BIN)/python -m tests.mutants

bench: $(STAMP) $(TOOLS)/.installed
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/bench_server.py --prism $(TOOLS)/node_modules/.bin/prism

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache .hypothesis
