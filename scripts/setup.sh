#!/usr/bin/env bash
# Installs what keel's tests, demo and benchmarks need on a fresh machine. Idempotent.
set -euo pipefail

need_apt=()
command -v git >/dev/null || need_apt+=(git)
if [ "${KEEL_SETUP_BENCH:-0}" = 1 ]; then
  command -v rg >/dev/null || need_apt+=(ripgrep)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi
fi

# The sample tasks and the Python trajectories run pytest.
python3 -m pytest --version >/dev/null 2>&1 || python3 -m pip install -q pytest

# cargo-nextest runs the test suite; the machine image usually has it.
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
