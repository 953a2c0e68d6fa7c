#!/usr/bin/env python3
"""keel against Aider on the same Exercism exercises, with the same model, in one run.

  keel   `keel eval DIR --model embedded:GGUF` (greedy, the model in-process)
  aider  aider-chat from PyPI (in a venv under target/bench/aider-venv), whole-file edit
         format, against the same GGUF behind upstream llama.cpp's server (PyPI
         xllamacpp, the model's own Jinja template, temperature 0), run the way Aider's
         benchmark runs: the instructions and the benchmark's request with the solution
         file, the tests run, on failure one retry with the test output; the exercise
         passes when the original test file passes.

Usage: bench/aider_eval.py [--exercises DIR] [--model PATH.gguf] [--limit N] [--tasks GLOB]
                           [--only keel|aider] [--keel PATH] [--timeout SECS]
Prints both pass rates and median times per exercise, and writes
bench/out/aider_eval.json. Needs the network to PyPI once (the venv), nothing after.
"""

import argparse
import fnmatch
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
VENV = ROOT / "target" / "bench" / "aider-venv"
AIDER_VERSION = "0.86.2"
MODELS = Path(os.environ.get("KEEL_MODELS_DIR") or Path(
    os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "keel/models")

# Aider's benchmark request (benchmark/prompts.py), so the figures compare.
INSTRUCTIONS_ADDENDUM = """
####

Use the above instructions to modify the supplied files: {file_list}
Don't change the names of existing functions or classes, as they may be called from other code like unit tests, etc.
Only use standard libraries, don't suggest installing any packages.
"""
TEST_FAILURES = """
####

See the testing errors above.
The tests are correct, don't try and change them.
Fix the code in {file_list} to resolve the errors.
"""


def exercises(root, pattern, limit):
    found = []
    for d in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        config = d / ".meta" / "config.json"
        if not config.is_file() or not fnmatch.fnmatch(d.name, pattern):
            continue
        files = json.loads(config.read_text())["files"]
        found.append((d, files["solution"], files["test"]))
    return found[:limit] if limit else found


def instructions(d):
    text = (d / ".docs" / "instructions.md").read_text()
    extra = d / ".docs" / "instructions.append.md"
    if extra.is_file():
        text += "\n\n" + extra.read_text()
    return text


def run_tests(work, tests, timeout=120):
    try:
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", *tests], cwd=work,
                           capture_output=True, text=True, timeout=timeout)
        return p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    except subprocess.TimeoutExpired:
        return False, "timed out"


def ensure_aider():
    aider = VENV / "bin" / "aider"
    if not aider.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", f"aider-chat=={AIDER_VERSION}"],
                       check=True)
    return aider


def start_server(model, ctx):
    code = f"""
import sys, time, xllamacpp
p = xllamacpp.CommonParams()
p.model.path = {str(model)!r}
p.n_ctx = {ctx}
p.hostnames = ["127.0.0.1"]
p.port = int(sys.argv[1])
p.model_alias = {{"qwen"}}
p.offline = True
p.use_jinja = True
p.cpuparams.n_threads = 2
p.cpuparams_batch.n_threads = 2
s = xllamacpp.Server(p)
print("READY", flush=True)
sys.stdin.read()
"""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "READY":
        raise SystemExit("llama.cpp server did not start")
    # Wait for the model to load.
    import urllib.request
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except Exception:
            time.sleep(0.5)
    return proc, port


def aider_task(aider, port, d, solution, tests, timeout):
    work = Path(tempfile.mkdtemp(prefix=f"aider-{d.name}-"))
    for f in solution + tests:
        (work / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(d / f, work / f)
    env = dict(os.environ, OPENAI_API_BASE=f"http://127.0.0.1:{port}/v1", OPENAI_API_KEY="x",
               AIDER_ANALYTICS="false")
    base = [str(aider), "--model", "openai/qwen", "--edit-format", "whole", "--no-git",
            "--yes-always", "--no-check-update", "--no-analytics", "--map-tokens", "0",
            "--no-stream", "--no-show-model-warnings",
            # As Aider's benchmark runs it: no shell commands suggested, and no URL of the
            # instructions fetched (offline here, that tried to install Playwright and
            # scrape docs.python.org inside the timed run).
            "--no-suggest-shell-commands", "--no-detect-urls",
            "--no-pretty", "--no-fancy-input"]  # Aider sends temperature 0 itself
    started = time.perf_counter()
    file_list = " ".join(solution)
    message = instructions(d) + INSTRUCTIONS_ADDENDUM.format(file_list=file_list)
    passed = False
    for attempt in range(2):
        try:
            subprocess.run(base + ["--message", message, *solution], cwd=work, env=env,
                           capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            break
        for t in tests:  # the check runs the original tests
            shutil.copyfile(d / t, work / t)
        passed, output = run_tests(work, tests)
        if passed:
            break
        message = output + TEST_FAILURES.format(file_list=file_list)
    return {"task": d.name, "passed": passed, "secs": round(time.perf_counter() - started, 1)}


def keel_run(keel, exercises_dir, model, pattern, limit, timeout):
    out = Path(tempfile.mkdtemp(prefix="keel-eval-")) / "run.json"
    cmd = [keel, "eval", str(exercises_dir), "--model", f"embedded:{model}", "--tasks", pattern,
           "--timeout", str(timeout), "--max-iterations", "10", "--out", str(out)]
    if limit:
        cmd += ["--limit", str(limit)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    run = json.loads(out.read_text())
    return [{"task": r["task"], "passed": r["passed"], "secs": round(r["wall_secs"], 1),
             "outcome": r["outcome"], "false_done": r["false_done"]} for r in run["records"]]


def summary(name, records):
    if not records:
        return {"name": name, "tasks": 0}
    passed = sum(r["passed"] for r in records)
    return {"name": name, "tasks": len(records), "passed": passed,
            "pass_rate": round(passed / len(records), 3),
            "median_secs": statistics.median(r["secs"] for r in records)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exercises", default=str(ROOT.parent / "shared/evals/exercism-python"))
    ap.add_argument("--model", default=str(MODELS / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"))
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--tasks", default="*")
    ap.add_argument("--only", choices=["keel", "aider"])
    ap.add_argument("--keel", default=str(ROOT / "target" / "release" / "keel"))
    ap.add_argument("--timeout", type=int, default=900)
    args = ap.parse_args()
    chosen = exercises(args.exercises, args.tasks, args.limit)
    results = {"model": args.model, "exercises": [d.name for d, _, _ in chosen]}
    if args.only != "aider":
        results["keel"] = keel_run(args.keel, args.exercises, args.model, args.tasks, args.limit,
                                   args.timeout)
    if args.only != "keel":
        aider = ensure_aider()
        server, port = start_server(args.model, 8192)
        try:
            results["aider"] = [aider_task(aider, port, d, s, t, args.timeout)
                                for d, s, t in chosen]
        finally:
            server.stdin.close()
            server.wait(timeout=30)
    results["summary"] = [summary(n, results[n]) for n in ("keel", "aider") if n in results]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "aider_eval.json").write_text(json.dumps(results, indent=2))
    for s in results["summary"]:
        print(json.dumps(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
