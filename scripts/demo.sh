#!/usr/bin/env bash
# Runs keel on the bundled sample task (a Python package with a failing test) in a
# scratch copy, with the default embedded model: Qwen2.5-Coder-1.5B-Instruct, run
# in-process by llama.cpp (installed by scripts/setup.sh from PyPI). Greedy decoding,
# so a run is reproducible. `scripts/demo.sh --replay` runs the scripted trajectory
# instead (no model, a second).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh"
cargo build --quiet --release --manifest-path "$here/Cargo.toml" -p keel-cli
work=$(mktemp -d)
cp -r "$here/examples/fix-the-test/." "$work/"
# keel's data (the session store) lives outside the project it works on.
home=$(mktemp -d)
echo "workspace: $work"
if [ "${1:-}" = "--replay" ]; then
  model=(--model "replay:$here/examples/fix-the-test.replay.jsonl")
  shift
else
  model=()  # nothing configured: keel uses the registered default model
  export KEEL_TEMPERATURE="${KEEL_TEMPERATURE:-0}"
fi
KEEL_HOME="${KEEL_HOME:-$home}" "$here/target/release/keel" run \
  "${model[@]}" "$@" \
  --workspace "$work" \
  "The test test_add fails. Fix the bug in calc/__init__.py."
