#!/usr/bin/env python3
"""Runs upstream llama.cpp's OpenAI-compatible server (PyPI `xllamacpp`) on 127.0.0.1.

keel's tests and benchmarks start it as a real peer:

    llama_server.py --model PATH [--port N] [--ctx N] [--alias NAME] [--threads N]

Port 0 picks a free port. Once the server answers /health it prints one line,
`READY http://127.0.0.1:PORT`, and serves until stdin closes or it gets SIGTERM,
so a test that dies takes its server with it.
"""
import argparse
import signal
import socket
import sys
import threading
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--alias", default="gemma")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=1)
    args = ap.parse_args()

    import xllamacpp

    port = args.port or free_port()
    p = xllamacpp.CommonParams()
    p.model.path = args.model
    p.n_ctx = args.ctx
    p.n_parallel = args.parallel
    p.hostnames = ["127.0.0.1"]
    p.port = port
    p.model_alias = {args.alias}
    p.offline = True
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    server = xllamacpp.Server(p)

    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except Exception:
            pass
        if time.time() > deadline:
            print("FAILED server did not become healthy", flush=True)
            return 1
        time.sleep(0.1)
    print(f"READY {url}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
