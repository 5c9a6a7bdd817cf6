#!/usr/bin/env bash
# All set-up on a fresh Debian machine, shared by the demo and the tests:
# Debian packages, a virtualenv in .venv, the project (editable) and the demo corpus in data/demo.
# Each step is skipped when it is already done, so running it again is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v tmux >/dev/null || missing+=(tmux)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp="$(sha256sum pyproject.toml | cut -d' ' -f1)"
installed=0
if [ "$(cat .venv/.setup-stamp 2>/dev/null)" != "$stamp" ]; then
  echo "setup: installing the project into .venv (torch is large: a few minutes the first time)"
  # --no-cache-dir: torch's CUDA wheels are several GB; cached, they would sit on disk twice (a CI
  # machine once ran out of space during this install).
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-cache-dir -e '.[test]'
  installed=1
fi

# Before anything else uses torch: torch and torchaudio load together and compute an fbank and a
# resample. On failure it names both versions and the fix, and nothing after it runs.
if ! .venv/bin/python -m engine.utils.install_check; then
  rm -f .venv/.setup-stamp  # so the next run installs again
  exit 1
fi
[ "$installed" = 0 ] || echo "$stamp" > .venv/.setup-stamp

.venv/bin/asr-data demo --out data/demo
