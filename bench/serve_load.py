#!/usr/bin/env python3
"""Load on `keel serve`: many concurrent sessions, each running a 10-step replay
trajectory (9 tool calls — read, grep, glob — and an answer) through POST /chat.

Checks that every client receives every event of its session, in order, none lost
(the live stream is compared with the session replayed from the store afterwards), and
reports the time from an event's emission (its `ts`, stamped by the server) to its
receipt by the client — p50/p99 — and the server's peak RSS (goal <= 60 MB).

Usage: bench/serve_load.py [--keel PATH] [--sessions N]
Results are printed and written to bench/out/serve_load.json.
"""

import argparse
import asyncio
import http.client
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
GOAL_RSS_MB = 60


def trajectory():
    """Ten model responses: nine tool calls, then the answer."""
    calls = [
        ("read", {"path": "src/app.py"}),
        ("grep", {"pattern": "def "}),
        ("glob", {"pattern": "**/*.py"}),
        ("read", {"path": "src/util.py", "offset": 1, "limit": 20}),
        ("grep", {"pattern": "return", "path": "src"}),
        ("read", {"path": "README.md"}),
        ("glob", {"pattern": "src/*"}),
        ("grep", {"pattern": "import"}),
        ("read", {"path": "src/app.py"}),
    ]
    lines = [json.dumps({"content": f"Step {i + 1}: looking with {name}.",
                         "tool_calls": [{"name": name, "arguments": args}]})
             for i, (name, args) in enumerate(calls)]
    lines.append(json.dumps({"content": "The app adds numbers in `src/app.py`; `src/util.py` "
                                        "holds the helpers. Nothing needs to change."}))
    return "\n".join(lines) + "\n"


def make_workspace(ws):
    (ws / "src").mkdir(parents=True)
    (ws / "README.md").write_text("# app\nAdds numbers.\n")
    (ws / "src/app.py").write_text("from util import add\n\n\ndef main():\n    return add(1, 2)\n")
    (ws / "src/util.py").write_text("".join(f"def helper{i}(x):\n    return x + {i}\n\n" for i in range(40)))


def parse_sse(lines):
    """SSE events as (id, event, data, receipt time) from (line, time) pairs."""
    event_id, name, data = None, None, []
    for line, received in lines:
        if line == "":
            if name is not None:
                yield int(event_id), name, json.loads("\n".join(data)), received
            event_id, name, data = None, None, []
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[6:] if line[5:6] == " " else line[5:])


def read_events(response):
    """SSE events from a blocking http.client response."""
    def lines():
        while True:
            line = response.readline()
            if not line:
                return
            yield line.decode().rstrip("\r\n"), time.time() * 1000
    return parse_sse(lines())


async def sse_lines(reader):
    """Lines of a chunked HTTP body, each with the time it arrived."""
    pending = b""
    while True:
        size = int((await reader.readline()).strip() or b"0", 16)
        if size == 0:
            return
        chunk = await reader.readexactly(size + 2)
        received = time.time() * 1000
        pending += chunk[:-2]
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode().rstrip("\r"), received


async def client(port, token, start, result):
    """One session: POST /chat and read its stream (HTTP/1.1 by hand, so that one
    thread can keep up with a hundred streams)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"message": "What does this app do?"}).encode()
    await start.wait()
    writer.write(
        f"POST /chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    status = (await reader.readline()).decode()
    headers = {}
    while (line := (await reader.readline()).decode().strip()):
        key, _, value = line.partition(":")
        headers[key.lower()] = value.strip()
    if " 200 " not in status or headers.get("transfer-encoding") != "chunked":
        result["error"] = f"{status.strip()} {headers}"
        writer.close()
        return
    events, latencies, lines = [], [], []
    async for item in sse_lines(reader):
        lines.append(item)
    for event_id, name, data, received in parse_sse(lines):
        events.append((event_id, name))
        latencies.append(received - data["ts"])
        if name == "session":
            result["session_id"] = data["session_id"]
        if name == "done":
            result["outcome"] = data["outcome"]
    writer.close()
    result["events"] = events
    result["latencies"] = latencies


async def run_clients(port, token, sessions):
    start = asyncio.Event()
    results = [{} for _ in range(sessions)]
    tasks = [asyncio.create_task(client(port, token, start, r)) for r in results]
    await asyncio.sleep(0.2)  # every connection open
    started = time.perf_counter()
    start.set()
    await asyncio.gather(*tasks)
    return results, time.perf_counter() - started


def stored_events(port, token, session_id):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", f"/sessions/{session_id}/events", headers={"Authorization": f"Bearer {token}"})
    events = [(i, n) for i, n, _, _ in read_events(conn.getresponse())]
    conn.close()
    return events


def vm_kb(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_s(pid):
    """User + system CPU time of a process so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def run(keel, sessions):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ws = tmp / "ws"
        make_workspace(ws)
        script = tmp / "trajectory.jsonl"
        script.write_text(trajectory())
        env = dict(os.environ, KEEL_HOME=str(tmp / "home"), HOME=str(tmp / "home"))
        env.pop("KEEL_TOKEN", None)
        server = subprocess.Popen([keel, "serve", "-p", "0", "-w", str(ws), "-m", f"replay:{script}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            server.stdout.readline()
            url = server.stdout.readline().strip().removeprefix("open ")
            port = int(url.split(":")[2].split("/")[0])
            token = url.split("token=")[1]
            rss_idle_kb = vm_kb(server.pid, "VmRSS")
            cpu_before, client_before = cpu_s(server.pid), time.process_time()
            results, wall = asyncio.run(run_clients(port, token, sessions))
            server_cpu, client_cpu = cpu_s(server.pid) - cpu_before, time.process_time() - client_before
            peak_kb = vm_kb(server.pid, "VmHWM")
            errors = [r["error"] for r in results if "error" in r]
            complete, lost = 0, 0
            for r in results:
                if "events" not in r:
                    continue
                ids = [i for i, _ in r["events"]]
                in_order = ids == list(range(1, len(ids) + 1))
                same = stored_events(port, token, r["session_id"]) == r["events"]
                ok = in_order and same and r.get("outcome") == "completed"
                complete += ok
                lost += not ok
            latencies = [x for r in results for x in r.get("latencies", [])]
            events = sum(len(r.get("events", [])) for r in results)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {
        "sessions": sessions,
        "steps_per_session": len(trajectory().splitlines()),
        "events_received": events,
        "events_per_session": events // max(1, sessions),
        "sessions_complete_in_order": complete,
        "sessions_with_lost_or_reordered_events": lost,
        "request_errors": errors[:5],
        "latency_ms_p50": round(percentile(latencies, 50), 3) if latencies else None,
        "latency_ms_p99": round(percentile(latencies, 99), 3) if latencies else None,
        "latency_ms_max": round(max(latencies), 3) if latencies else None,
        "wall_s": round(wall, 2),
        "events_per_s": round(events / wall),
        "server_cpu_s": round(server_cpu, 2),
        "client_cpu_s": round(client_cpu, 2),
        "server_rss_idle_mb": round(rss_idle_kb / 1024, 1),
        "server_peak_rss_mb": round(peak_kb / 1024, 1),
        "goal_peak_rss_mb": GOAL_RSS_MB,
        "met": complete == sessions and not errors and peak_kb / 1024 <= GOAL_RSS_MB,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--keel", default=str(ROOT / "target" / "release" / "keel"))
    parser.add_argument("--sessions", type=int, default=100)
    args = parser.parse_args()
    if not Path(args.keel).exists():
        subprocess.run(["cargo", "build", "--release", "-p", "keel-cli"], cwd=ROOT, check=True)
    result = run(args.keel, args.sessions)
    print(json.dumps(result, indent=2), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "serve_load.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
