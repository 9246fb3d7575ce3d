#!/usr/bin/env bash
# Create ./.venv (once) and install the project into it, with the extras given.
# Usage: scripts/setup-venv.sh [EXTRA]   e.g. scripts/setup-venv.sh test
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "koodrive-exporter needs Python 3.10 or newer as '$python'" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
target="."
[ -n "${1:-}" ] && target=".[$1]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --editable "$target"
