#!/usr/bin/env bash
# Set up (if needed), then run the whole test suite on the demo corpus made by the set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ASR_TUI_DEMO_DIR="$PWD/data/demo"
exec .venv/bin/python -m pytest -p no:cacheprovider -ra "$@" tests
