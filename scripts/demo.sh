#!/usr/bin/env bash
# Runs keel on the bundled sample task (a Python package with a failing test) in a
# scratch copy, with the scripted replay model.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/setup.sh"
cargo build --quiet --manifest-path "$here/Cargo.toml" -p keel-cli
work=$(mktemp -d)
cp -r "$here/examples/fix-the-test/." "$work/"
echo "workspace: $work"
KEEL_HOME="${KEEL_HOME:-$work/.keel-home}" "$here/target/debug/keel" run \
  --model "replay:$here/examples/fix-the-test.replay.jsonl" \
  --workspace "$work" \
  "Fix the failing test"
