#!/usr/bin/env bash
# Set up (if needed), then open the console on the bundled demo preset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/asr-tui --preset presets/conformer-demo.yaml --runs-root exp
