#!/usr/bin/env bash
# Set up the exporter and run it against its embedded KooDrive simulator.
# Then open http://127.0.0.1:9877/ ; stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
exec .venv/bin/koodrive-exporter --demo "$@"
