#!/usr/bin/env python3
"""What `keel chat` adds between a model token arriving and its being drawn.

A model server on 127.0.0.1 (OpenAI-compatible, written here: it streams one marked
token every --gap ms and notes when it sent each) is read two ways in the same run:

- raw: an HTTP client in this process reads the stream itself — the time from the
  server sending a token to the client having it;
- chat: the real `keel chat` binary in a pseudo-terminal, `-m openai:bench@URL`; the
  time from the server sending a token to the token appearing on the terminal (the
  model client, the agent loop, the store, the transcript and the pty in between).

Both clocks are this process's monotonic clock. It reports p50/p99 of each and what
the chat adds at p50/p99 (goal: <= 16 ms at p99, one frame at 60 Hz).

Usage: bench/chat_draw.py [--keel PATH] [--tokens N] [--gap MS] [--runs N]
Results are printed and written to bench/out/chat_draw.json.
"""

import argparse
import http.client
import json
import os
import pty
import select
import statistics
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
GOAL_MS = 16.0


def marker(i):
    return f"k{i:05d}q "


class Model:
    """The scripted model: what to stream and when each token went out."""

    def __init__(self, tokens, gap):
        self.tokens = tokens
        self.gap = gap
        self.sent = {}
        self.lock = threading.Lock()


def handler_for(model):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply_json(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.endswith("/models"):
                self.reply_json(200, {"object": "list", "data": [
                    {"id": "bench", "object": "model", "owned_by": "bench", "max_model_len": 16384}]})
            else:
                self.reply_json(404, {"error": "not found"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(length)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def chunk(payload):
                data = f"data: {payload}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            for i in range(model.tokens):
                delta = {"choices": [{"index": 0, "delta": {"content": marker(i)}, "finish_reason": None}]}
                with model.lock:
                    model.sent[i] = time.monotonic()
                chunk(json.dumps(delta))
                time.sleep(model.gap / 1000)
            chunk(json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 100, "completion_tokens": model.tokens}}))
            chunk("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


def serve(model):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(model))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def found_markers(text, seen, now, arrived, tokens):
    """Notes the arrival time of every marker in `text` not seen yet."""
    start = 0
    while True:
        at = text.find("k", start)
        if at < 0 or at + 7 > len(text):
            return
        piece = text[at:at + 7]
        start = at + 1
        if piece[6] == "q" and piece[1:6].isdigit():
            i = int(piece[1:6])
            if i < tokens and i not in seen:
                seen.add(i)
                arrived[i] = now


def raw_run(port, tokens):
    """The stream read directly: arrival time per token."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    body = json.dumps({"model": "bench", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    arrived, seen, text = {}, set(), ""
    while True:
        data = response.read1(65536)
        if not data:
            break
        text += data.decode("utf-8", "replace")
        found_markers(text, seen, time.monotonic(), arrived, tokens)
        text = text[-16:]
    conn.close()
    return arrived


def chat_run(keel, port, tokens, home, repo):
    """`keel chat` in a pty: when each token appears on the terminal."""
    env = dict(os.environ, HOME=str(home), KEEL_HOME=str(home / "data"), NO_COLOR="1", TERM="xterm")
    for key in ("KEEL_MODEL", "KEEL_CONFIG", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        env.pop(key, None)
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(repo)
        os.execve(keel, [keel, "chat", "--yes", "-m", f"openai:bench@http://127.0.0.1:{port}/v1"], env)
    buffer = b""

    def read_until(needle, limit=60):
        nonlocal buffer
        end = time.monotonic() + limit
        while needle not in buffer:
            if time.monotonic() > end:
                raise TimeoutError(f"no {needle!r} in {buffer[-400:]!r}")
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    buffer += os.read(fd, 65536)
                except OSError:
                    raise SystemExit(f"keel chat ended: {buffer.decode('utf-8', 'replace')}")

    read_until("› ".encode())
    os.write(fd, b"say hello\r")
    arrived, seen, text = {}, set(), ""
    end = time.monotonic() + 120
    while len(seen) < tokens and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if not ready:
            continue
        data = os.read(fd, 65536)
        now = time.monotonic()
        text += data.decode("utf-8", "replace")
        found_markers(text, seen, now, arrived, tokens)
        text = text[-16:]
    buffer = b""
    read_until("› ".encode())
    os.write(fd, b"/exit\r")
    os.waitpid(pid, 0)
    os.close(fd)
    return arrived


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--keel", default=str(ROOT / "target" / "release" / "keel"))
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--gap", type=float, default=10.0, help="ms between tokens")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    args.keel = str(Path(args.keel).resolve())
    if not Path(args.keel).exists():
        raise SystemExit(f"no keel binary at {args.keel}: cargo build --release -p keel-cli")
    raw, chat = [], []
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        repo = Path(scratch) / "repo"
        repo.mkdir(parents=True)
        (repo / "notes.txt").write_text("nothing here\n")
        for run in range(args.runs):
            for kind in ("raw", "chat"):
                model = Model(args.tokens, args.gap)
                server = serve(model)
                port = server.server_address[1]
                if kind == "raw":
                    arrived = raw_run(port, args.tokens)
                else:
                    arrived = chat_run(args.keel, port, args.tokens, home, repo)
                server.shutdown()
                missing = args.tokens - len(arrived)
                if missing:
                    raise SystemExit(f"{kind} run {run}: {missing} of {args.tokens} tokens never arrived")
                latencies = [(arrived[i] - model.sent[i]) * 1000 for i in range(args.tokens)]
                (raw if kind == "raw" else chat).extend(latencies)
    result = {
        "tokens": args.tokens * args.runs,
        "gap_ms": args.gap,
        "raw_ms": {"p50": percentile(raw, 50), "p99": percentile(raw, 99)},
        "chat_ms": {"p50": percentile(chat, 50), "p99": percentile(chat, 99)},
    }
    result["added_ms"] = {p: result["chat_ms"][p] - result["raw_ms"][p] for p in ("p50", "p99")}
    result["goal_ms"] = GOAL_MS
    result["met"] = result["added_ms"]["p99"] <= GOAL_MS
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "chat_draw.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"token → screen, {result['tokens']} tokens every {args.gap:g} ms")
    print(f"  raw stream : p50 {result['raw_ms']['p50']:.2f} ms  p99 {result['raw_ms']['p99']:.2f} ms")
    print(f"  keel chat  : p50 {result['chat_ms']['p50']:.2f} ms  p99 {result['chat_ms']['p99']:.2f} ms")
    print(f"  chat adds  : p50 {result['added_ms']['p50']:.2f} ms  p99 {result['added_ms']['p99']:.2f} ms"
          f"  (goal <= {GOAL_MS:g} ms at p99: {'met' if result['met'] else 'NOT met'})")


if __name__ == "__main__":
    main()
