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
OPENAPI_TS_VERSION := 7.13.0
TYPESCRIPT_VERSION := 5.9.3
OPENAPI_FETCH_VERSION := 0.17.0
NODE_TYPES_VERSION := 20.19.43

.PHONY: install run test lint format bench bench-gpu bench-ray st contract contract-prism mutants client client-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,gpu,ray]"
	touch $@

$(TOOLS)/.installed: Makefile
	mkdir -p $(TOOLS)
	cd $(TOOLS) && npm install --no-fund --no-audit --silent \
		@stoplight/prism-cli@$(PRISM_VERSION) @redocly/cli@$(REDOCLY_VERSION) \
		openapi-typescript@$(OPENAPI_TS_VERSION) typescript@$(TYPESCRIPT_VERSION) \
		openapi-fetch@$(OPENAPI_FETCH_VERSION) @types/node@$(NODE_TYPES_VERSION)
	touch $@

run: $(STAMP)
	$(BIN)/python -m mockserver --host $(HOST) --port $(PORT)

# Browser tests drive Debian's Chromium (Playwright's own browser download does not work here).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq chromium

test: $(STAMP) lint client-check $(CHROMIUM)
	$(BIN)/python -m pytest

lint: $(STAMP) $(TOOLS)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/openapi-spec-validator openapi.yaml
	$(TOOLS)/node_modules/.bin/redocly lint openapi.yaml

# Clients generated from openapi.yaml; never edit them by hand. The Python generator runs the
# pinned ruff as its formatter, so it needs the venv on PATH.
PY_CLIENT := generated_client
TS_CLIENT := generated_client_ts
GENERATE_PY = PATH="$(abspath $(BIN)):$$PATH" $(BIN)/openapi-python-client generate \
	--path openapi.yaml --config openapi-python-client.yaml --meta none --overwrite \
	--fail-on-warning --output-path
GENERATE_TS = $(TOOLS)/node_modules/.bin/openapi-typescript openapi.yaml --default-non-nullable false --output
TSC = $(TOOLS)/node_modules/.bin/tsc

client: $(STAMP) $(TOOLS)/.installed
	$(GENERATE_PY) $(PY_CLIENT)
	$(GENERATE_TS) $(TS_CLIENT)/schema.d.ts

# Regenerate into a scratch folder and fail on any difference; then type-check the TypeScript.
client-check: $(STAMP) $(TOOLS)/.installed
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(GENERATE_PY) "$$tmp/py" >/dev/null && \
	$(GENERATE_TS) "$$tmp/ts/schema.d.ts" >/dev/null 2>&1 && \
	diff -r --exclude=__pycache__ "$$tmp/py" $(PY_CLIENT) && \
	diff -r "$$tmp/ts" $(TS_CLIENT) --exclude=README.md && \
	echo "generated clients are up to date with openapi.yaml"
	$(TSC) -p examples/typescript --noEmit

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
	$(BIN)/python bench/bench_png.py

# On a machine with an NVIDIA GPU: plain diffusers vs the diffusers backend on full-size SDXL.
bench-gpu: $(STAMP)
	$(BIN)/python bench/bench_gpu.py --compile

# The ray backend on the CPU with tiny pipelines: in-process vs Ray with 1 and 2 replicas.
bench-ray: $(STAMP)
	$(BIN)/python bench/bench_ray.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache .hypothesis
