#!/usr/bin/env python3
"""keel's repo map against Aider's on the same real tree, in one run.

The tree: the site-packages of the Aider venv (aider-chat from PyPI and its
dependencies: thousands of Python files), copied to a scratch directory so it can be
changed. Measured, each as the wall time of the whole command:

  cold     keel: `keel map --no-cache` (walk, parse every file, rank, render);
           Aider: RepoMap.get_repo_map over every file with its tags cache removed
  refresh  keel: `keel map` with its cache warm after one file changed (load the cache,
           walk, parse the one file, rank, render, save), a whole process; and the
           in-memory refresh a running agent does (keel-map's `refresh` example: the
           map open, one file changed 20 times, each time `update` + `render`), the
           median and the slowest (target <= 50 ms)

Both maps get the same 2,048-token budget and no focus. Prints the times and the ratio
keel/Aider (target <= 0.2) and writes bench/out/repomap.json.

Usage: bench/repomap.py [--keel PATH] [--tree DIR]
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT / "bench"))
from aider_eval import VENV, ensure_aider  # noqa: E402

AIDER_MAP = """
import sys, time
from pathlib import Path
from aider.io import InputOutput
from aider.repomap import RepoMap

class Model:
    # Aider asks the main model to count tokens; the same estimate as keel's (bytes / 4).
    def token_count(self, text):
        return len(text) // 4

root = sys.argv[1]
files = [str(p) for p in Path(root).rglob("*.py")]
started = time.time()
rm = RepoMap(map_tokens=2048, root=root, main_model=Model(), io=InputOutput(yes=True), verbose=False)
text = rm.get_repo_map([], files)
print(len(files), len(text or ""), time.time() - started)
"""


def timed(command, **kw):
    started = time.time()
    out = subprocess.run(command, capture_output=True, text=True, **kw)
    return time.time() - started, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keel", default=str(ROOT / "target" / "release" / "keel"))
    ap.add_argument("--tree")
    args = ap.parse_args()
    ensure_aider()
    source = Path(args.tree) if args.tree else next((VENV / "lib").glob("python3*/site-packages"))
    work = Path(tempfile.mkdtemp(prefix="keel-map-bench-"))
    tree = work / "tree"
    shutil.copytree(source, tree, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    files = sum(1 for _ in tree.rglob("*.py"))
    home = work / "home"
    env = {"KEEL_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(work)}

    keel_cold, out = timed([args.keel, "map", "-w", str(tree), "--no-cache", "--tokens", "2048", "--stats"], env=env)
    print(out.stderr.strip())
    # Warm the cache, change one file, refresh.
    subprocess.run([args.keel, "map", "-w", str(tree), "--tokens", "2048"], env=env, capture_output=True, check=True)
    changed = next(tree.rglob("*.py"))
    changed.write_text(changed.read_text() + "\n\ndef keel_bench_added():\n    return 1\n")
    keel_refresh, out = timed([args.keel, "map", "-w", str(tree), "--tokens", "2048", "--stats"], env=env)
    print(out.stderr.strip())

    # In memory: the example is built from this checkout.
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "keel-map", "--example", "refresh"],
                   cwd=ROOT, check=True)
    relative = str(changed.relative_to(tree))
    cache = home / "refresh-bench.map"
    example = ROOT / "target" / "release" / "examples" / "refresh"
    subprocess.run([str(example), str(tree), relative, "1", str(cache)], check=True, capture_output=True)
    memory = json.loads(subprocess.run([str(example), str(tree), relative, "20", str(cache)],
                                       check=True, capture_output=True, text=True).stdout)
    print("keel in-memory refresh:", memory["refresh_ms"])

    for cache in tree.glob(".aider.tags.cache*"):
        shutil.rmtree(cache, ignore_errors=True)
    aider_cold, out = timed([str(VENV / "bin" / "python"), "-c", AIDER_MAP, str(tree)])
    if out.returncode != 0:
        print(out.stderr[-2000:])
        sys.exit(1)
    print("aider:", out.stdout.strip())

    result = {
        "tree": str(source),
        "python_files": files,
        "keel_cold_s": round(keel_cold, 2),
        "keel_refresh_after_one_change_s": round(keel_refresh, 3),
        "keel_in_memory_refresh_ms": memory["refresh_ms"],
        "aider_cold_s": round(aider_cold, 2),
        "cold_ratio_keel_over_aider": round(keel_cold / aider_cold, 3),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "repomap.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
