#!/usr/bin/env bash
# Set up the exporter with its test tools and run every check: lint, format, tests.
# Extra arguments go to pytest, e.g. scripts/test.sh -k records
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
