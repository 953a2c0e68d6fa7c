#!/usr/bin/env bash
# Runs keel on the bundled sample task (a Python package with a failing test) in a
# scratch copy, with the default embedded model (Gemma 3 270M, in-process llama.cpp).
# That model is far too small to fix anything: the demo shows the engine and the loop
# working, and keel refusing to call red tests done. `scripts/demo.sh --replay` runs the
# scripted trajectory that does fix it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh"
cargo build --quiet --release --manifest-path "$here/Cargo.toml" -p keel-cli
work=$(mktemp -d)
cp -r "$here/examples/fix-the-test/." "$work/"
echo "workspace: $work"
if [ "${1:-}" = "--replay" ]; then
  model=(--model "replay:$here/examples/fix-the-test.replay.jsonl")
else
  model=()  # nothing configured: keel uses the registered default model
  mkdir -p "$work/.keel"
  # A base model rambles: keep each response short so the demo ends in a minute or two.
  printf 'max_tokens = 256\n' > "$work/.keel/config.toml"
  set -- --max-iterations 3
fi
KEEL_HOME="${KEEL_HOME:-$work/.keel-home}" "$here/target/release/keel" run \
  "${model[@]}" "$@" \
  --workspace "$work" \
  "Fix the failing test"
