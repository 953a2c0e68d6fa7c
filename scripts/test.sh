#!/usr/bin/env bash
# Runs every test of the workspace (installing what the tests need first).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/setup.sh
# setup.sh installed llama.cpp's server and the model: its tests must run, not skip.
export KEEL_REQUIRE_LLAMA_SERVER=1
# ... and chromium with playwright-core: the browser UI test must run too.
export KEEL_REQUIRE_BROWSER=1
# ... and the MCP servers and the Python MCP SDK: the MCP tests must run too.
export KEEL_REQUIRE_MCP_PEERS=1
cargo nextest run --workspace --no-fail-fast "$@"
