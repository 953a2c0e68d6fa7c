#!/usr/bin/env bash
# The sandbox's cost per bash call: `true` through keel's real bash tool, sandboxed
# (bubblewrap) vs unsandboxed, interleaved in one run (a ratio and the added time, not
# absolute figures: these machines are shared), for both backends.
# Usage: bench/sandbox.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
for backend in bubblewrap landlock; do
  cargo run -q --release -p keel-tools --example sandbox_cost -- "${1:-200}" "$backend"
done
