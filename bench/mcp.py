#!/usr/bin/env python3
"""keel's MCP client against the official Python SDK client (PyPI `mcp`), on the same
reference servers in the same run:

- start: the npm filesystem server and PyPI's git server started and their tools
  listed, then closed — `keel mcp list --json` (the whole keel process) vs a Python
  SDK client doing the same (its interpreter start included too);
- calls: N `read_text_file` calls to the filesystem server — made by a keel agent
  turn (`keel run` with a replay trajectory: every call also goes through the agent
  loop and is stored as events) vs the SDK client calling in a loop.

Reported as keel / SDK ratios (lower is better), medians over the repetitions.
Usage: bench/mcp.py [--keel PATH] [--calls N] [--reps N]; results in bench/out/mcp.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
FS = ROOT / "tests/mcp/node_modules/.bin/mcp-server-filesystem"
# Each call reads another file (the agent stops a model that repeats one call).
CALL_FILES = 1000

SDK_CLIENT = r'''
import asyncio, json, sys
from mcp import Client, StdioServerParameters
async def main(ws, calls):
    servers = [StdioServerParameters(command=sys.argv[3], args=[ws]),
               StdioServerParameters(command="python3", args=["-m", "mcp_server_git", "--repository", ws])]
    if calls == 0:
        async def one(p):
            async with Client(p) as c:
                return len((await c.list_tools()).tools)
        print(json.dumps(await asyncio.gather(*(one(p) for p in servers))))
        return
    async with Client(servers[0]) as c:
        for i in range(calls):
            r = await c.call_tool("read_text_file", {"path": f"{ws}/notes{i}.txt"})
            assert not r.is_error
    print(json.dumps({"calls": calls}))
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
'''


def workspace(base):
    ws = Path(base) / "ws"
    (ws / ".keel").mkdir(parents=True)
    for i in range(CALL_FILES):
        (ws / f"notes{i}.txt").write_text(f"file {i}\n" + "alpha\nbeta\n" * 20)
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    (ws / ".keel/config.toml").write_text(
        f'[[mcp.servers]]\nname = "fs"\ncommand = "{FS}"\nargs = ["."]\n\n'
        '[[mcp.servers]]\nname = "git"\ncommand = "python3"\n'
        'args = ["-m", "mcp_server_git", "--repository", "."]\n')
    return ws.resolve()


def timed(cmd, **kw):
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--keel", default=str(ROOT / "target/release/keel"))
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    args.calls = min(args.calls, CALL_FILES)
    if not FS.exists():
        sys.exit("the MCP peers are missing: run scripts/setup.sh")
    with tempfile.TemporaryDirectory() as base:
        ws = workspace(base)
        env = dict(os.environ, KEEL_HOME=str(Path(base) / "data"))
        script = Path(base) / "calls.jsonl"
        steps = [json.dumps({"content": "", "tool_calls": [
            {"name": "fs__read_text_file", "arguments": {"path": str(ws / f"notes{i}.txt")}}]})
            for i in range(args.calls)]
        script.write_text("\n".join(steps + [json.dumps({"content": "done"})]) + "\n")
        client = Path(base) / "sdk_client.py"
        client.write_text(SDK_CLIENT)
        keel_run = [args.keel, "run", "--json", "--no-verify", "--max-iterations",
                    str(args.calls + 1), "--model", f"replay:{script}", "read"]
        results = {"start": {"keel": [], "sdk": []}, "calls": {"keel": [], "sdk": []}}
        for _ in range(args.reps):
            results["start"]["keel"].append(
                timed([args.keel, "mcp", "list", "--json"], cwd=ws, env=env))
            results["start"]["sdk"].append(
                timed([sys.executable, str(client), str(ws), "0", str(FS)], cwd=ws, env=env))
            results["calls"]["keel"].append(timed(keel_run, cwd=ws, env=env))
            results["calls"]["sdk"].append(
                timed([sys.executable, str(client), str(ws), str(args.calls), str(FS)],
                      cwd=ws, env=env))
    summary = {}
    for what, runs in results.items():
        keel, sdk = statistics.median(runs["keel"]), statistics.median(runs["sdk"])
        summary[what] = {"keel_s": round(keel, 3), "sdk_s": round(sdk, 3),
                         "ratio": round(keel / sdk, 2), "runs": runs}
        print(f"{what:6} keel {keel:6.3f} s   python sdk {sdk:6.3f} s   ratio {keel / sdk:.2f}")
    summary["calls_per_run"] = args.calls
    OUT.mkdir(exist_ok=True)
    (OUT / "mcp.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
