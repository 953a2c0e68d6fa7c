#!/usr/bin/env bash
# Runs every test of the workspace (installing what the tests need first).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/setup.sh
cargo nextest run --workspace --no-fail-fast "$@"
