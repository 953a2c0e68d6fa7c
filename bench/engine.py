#!/usr/bin/env python3
"""The embedded engine against llama.cpp's own `llama-bench`, in the same run.

llama-bench is built from the very llama.cpp sources keel's engine vendors (the
llama-cpp-sys-2 crate), with the crate's build settings (GGML_NATIVE=OFF, OpenMP), from
the tool's source in PyPI's llama-cpp-python sdist (the crate ships no tools). Same GGUF,
same threads.

  speed        prefill 512 tokens and decode 128 tokens, tok/s (goal >= 0.95x llama-bench)
  constrained  N tool calls sampled at T=0.8 with and without keel's grammar: how many
               parse and match the tool's schema (goal: all constrained ones), and decode
               speed constrained vs unconstrained (goal >= 0.97x)
  ttft         turn-2 time to first token vs turn 1: ~1.5k-token prompt, ~100 new tokens
               (goal <= 0.1x)
  rss          peak RSS serving 1 and 4 sessions at once

Usage: bench/engine.py [speed|constrained|ttft|rss|all] [--samples N] [--threads N]
Needs scripts/setup.sh (the model) and network access to PyPI for the sdist once.
Results are printed and written to bench/out/engine.json.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
WORK = ROOT / "target" / "llama-bench"
SDIST = "llama-cpp-python==0.3.36"


def model_path():
    env = os.environ.get("KEEL_TEST_GGUF")
    if env:
        return Path(env)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local/share")
    return Path(data) / "keel/models/gemma-3-270m-q4_k_m.gguf"


def vendored_llama_cpp():
    home = os.environ.get("CARGO_HOME") or str(Path.home() / ".cargo")
    found = sorted(glob.glob(f"{home}/registry/src/*/llama-cpp-sys-2-0.1.161/llama.cpp"))
    if not found:
        raise SystemExit("llama-cpp-sys-2 sources not found: build keel first (cargo build --release)")
    return Path(found[-1])


def build_llama_bench():
    exe = WORK / "build" / "bin" / "llama-bench"
    if exe.exists():
        return exe
    WORK.mkdir(parents=True, exist_ok=True)
    dl = WORK / "sdist"
    if not list(dl.glob("*.tar.gz")):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        SDIST, "-d", str(dl)], check=True)
    src = WORK / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(vendored_llama_cpp(), src)
    with tarfile.open(next(dl.glob("*.tar.gz"))) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/tools/llama-bench/" in m.name]
        tar.extractall(WORK / "sdist-x", members=members)
    bench_src = next((WORK / "sdist-x").glob("*/vendor/llama.cpp/tools/llama-bench"))
    shutil.rmtree(src / "tools" / "llama-bench", ignore_errors=True)
    shutil.copytree(bench_src, src / "tools" / "llama-bench")
    with open(src / "CMakeLists.txt", "a") as f:
        f.write("\nadd_subdirectory(tools/llama-bench)\n")
    subprocess.run(["cmake", "-S", str(src), "-B", str(WORK / "build"), "-DCMAKE_BUILD_TYPE=Release",
                    "-DGGML_NATIVE=OFF", "-DGGML_OPENMP=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
                    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF",
                    "-DLLAMA_BUILD_TOOLS=OFF", "-DLLAMA_BUILD_APP=OFF", "-DBUILD_SHARED_LIBS=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(WORK / "build"), "--target", "llama-bench", "-j",
                    str(os.cpu_count() or 2)], check=True, stdout=subprocess.DEVNULL)
    return exe


def keel_bench():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "keel-engine", "--example", "engine_bench"],
                   cwd=ROOT, check=True)
    return ROOT / "target" / "release" / "examples" / "engine_bench"


def run_json(cmd):
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout
    return json.loads(out.decode().strip().splitlines()[-1])


def speed(bench, model, threads):
    lb = build_llama_bench()
    out = subprocess.run([str(lb), "-m", str(model), "-p", "512", "-n", "128", "-t", str(threads), "-r", "3",
                          "-o", "json"], check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    rows = json.loads(out)
    ref = {("pp" if r["n_prompt"] else "tg"): r["avg_ts"] for r in rows}
    ours = run_json([str(bench), "speed", str(model), str(threads)])
    res = {
        "llama_bench_pp512": ref["pp"], "keel_prefill_512": ours["prefill_tok_s"],
        "prefill_ratio": ours["prefill_tok_s"] / ref["pp"],
        "llama_bench_tg128": ref["tg"], "keel_decode_128": ours["decode_tok_s"],
        "decode_ratio": ours["decode_tok_s"] / ref["tg"], "threads": threads,
    }
    print(f"speed: prefill {res['keel_prefill_512']:.0f} vs llama-bench {ref['pp']:.0f} tok/s "
          f"({res['prefill_ratio']:.2f}x); decode {res['keel_decode_128']:.1f} vs {ref['tg']:.1f} tok/s "
          f"({res['decode_ratio']:.2f}x)")
    return res


def constrained(bench, model, samples):
    res = run_json([str(bench), "constrained", str(model), str(samples)])
    c, u = res["constrained"], res["unconstrained"]
    res["speed_ratio"] = c["tok_s"] / u["tok_s"]
    print(f"constrained: {c['valid']}/{c['samples']} valid with the grammar, {u['valid']}/{u['samples']} without; "
          f"{c['ms_per_token']:.1f} vs {u['ms_per_token']:.1f} ms/token ({res['speed_ratio']:.2f}x speed)")
    return res


def ttft(bench, model):
    res = run_json([str(bench), "ttft", str(model)])
    print(f"ttft: turn 1 {res['turn1_ttft_ms']:.0f} ms, turn 2 {res['turn2_ttft_ms']:.0f} ms "
          f"({res['ratio']:.3f}x; {res['tokens']})")
    return res


def rss(bench, model):
    res = {}
    for n in (1, 4):
        r = run_json([str(bench), "rss", str(model), str(n)])
        res[f"sessions_{n}"] = r
        print(f"rss: {n} session(s): peak {r['peak_rss_mb']:.0f} MB ({r['tokens']} tokens in {r['seconds']:.1f} s)")
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("which", nargs="?", default="all", choices=["speed", "constrained", "ttft", "rss", "all"])
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    model = model_path()
    if not model.is_file():
        raise SystemExit(f"no model at {model}: run scripts/setup.sh")
    bench = keel_bench()
    results = {}
    if args.which in ("speed", "all"):
        results["speed"] = speed(bench, model, args.threads)
    if args.which in ("constrained", "all"):
        results["constrained"] = constrained(bench, model, args.samples)
    if args.which in ("ttft", "all"):
        results["ttft"] = ttft(bench, model)
    if args.which in ("rss", "all"):
        results["rss"] = rss(bench, model)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "engine.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(results)
    path.write_text(json.dumps(old, indent=2))


if __name__ == "__main__":
    main()
