"""Benchmark: the HTTP listener against a bare Flask app, same server, with wrk.

    python bench/bench_http.py                     # 3 rounds of 10 s runs, prints a table
    python bench/bench_http.py --write-docs        # also updates the benchmark in docs/listener.md
    python bench/bench_http.py --sink-delay 0.001  # every stored hit costs 1 ms (a database write)

Needs wrk (Debian package `wrk`). Both apps run, one after the other, under
the production set-up (listener.wsgi.HttpServer: waitress, 8 threads) on
127.0.0.1, and wrk sends the same paths to both: /acces/<code>, one request
in ten a canary code known to the sink (a hit: evidence built and
``observe`` called), the rest unknown codes. The bare app is a one-route
Flask app that answers every path with the same page bytes: the ceiling a
Flask app can reach under this server on this machine.

Hits go to an in-memory HitSink (a list; ``--sink-delay`` makes each
``observe`` sleep, like a database write). The script checks that the sink
stored one hit per canary request wrk completed (give or take the requests
in flight when wrk stops).
"""

from __future__ import annotations

import argparse
import logging
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
DOC = ROOT / "docs" / "listener.md"
START, END = "<!-- bench-http:start -->", "<!-- bench-http:end -->"

LUA = """
local paths = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n - 1) %% #paths + 1])
end
"""


class ListSink:
    """In-memory HitSink: a set of codes and a list of observations."""

    def __init__(self, codes: set[str], delay: float) -> None:
        self.codes = codes
        self.delay = delay
        self.stored: list = []
        self._lock = threading.Lock()

    def known(self, kind, value) -> bool:
        return value in self.codes

    def observe(self, observation) -> None:
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            self.stored.append(observation)


def code(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(16))


def paths(seed: int) -> tuple[set[str], list[str], list[str]]:
    """100 paths, every tenth one a canary code (so each wrk thread sends 1 in 10),
    and 10 paths that are all canary codes."""
    rng = random.Random(seed)
    canaries = sorted({code(rng) for _ in range(10)})
    mixed = [f"/acces/{canaries[i // 10] if i % 10 == 0 else code(rng)}" for i in range(100)]
    return set(canaries), mixed, [f"/acces/{c}" for c in canaries]


def bare_app(body: bytes):
    from flask import Flask, Response

    app = Flask("bare")

    @app.route("/", defaults={"path": ""})
    @app.route("/<path:path>")
    def page(path: str) -> Response:
        return Response(body, content_type="text/html; charset=utf-8")

    return app


def run_wrk(url: str, script: Path, args: argparse.Namespace) -> tuple[float, int, str]:
    out = subprocess.run(["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{args.duration}s",
                          "-s", str(script), "--latency", url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE)
    return rate, total, p99.group(1) if p99 else "?"


def serve_and_measure(app, script: Path, args: argparse.Namespace, sink: ListSink | None = None):
    """Requests/s, requests completed, p99 latency and hits stored during the measured run."""
    from listener.wsgi import HttpServer

    with HttpServer(app, port=0, threads=args.server_threads) as server:
        host, port = server.address
        run_wrk(f"http://{host}:{port}", script, argparse.Namespace(**{**vars(args), "duration": 2}))  # warm-up
        before = len(sink.stored) if sink else 0
        rate, total, p99 = run_wrk(f"http://{host}:{port}", script, args)
        time.sleep(0.2)  # let the requests in flight when wrk stopped finish
        return rate, total, p99, (len(sink.stored) - before if sink else 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--server-threads", type=int, default=8)
    parser.add_argument("--sink-delay", type=float, default=0.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs; the best of each is shown")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("needs wrk: apt-get install wrk", file=sys.stderr)
        return 2

    from canary.contacts import demo_contacts
    from listener.http import HttpConfig, create_app

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth" under overload
    canaries, mixed, hits_only = paths(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        scripts = {}
        for name, path_list in (("mixed", mixed), ("hits", hits_only)):
            scripts[name] = Path(tmp) / f"{name}.lua"
            scripts[name].write_text(LUA % ", ".join(f'"{p}"' for p in path_list), encoding="utf-8")
        sink = ListSink(canaries, args.sink_delay)
        app = create_app(sink, HttpConfig.from_table({}, contacts=demo_contacts()))
        body = app.test_client().get("/").data
        bare_flask = bare_app(body)
        runs: dict[str, list] = {"bare": [], "mixed": [], "hits": []}
        for _ in range(args.rounds):  # interleaved, best of each: other load on the machine hits all alike
            runs["bare"].append(serve_and_measure(bare_flask, scripts["mixed"], args))
            runs["mixed"].append(serve_and_measure(app, scripts["mixed"], args, sink))
            runs["hits"].append(serve_and_measure(app, scripts["hits"], args, sink))

    slack = args.connections + args.wrk_threads * 10
    checks = [abs(r[3] - r[1] / 10) <= slack for r in runs["mixed"]] + [abs(r[3] - r[1]) <= slack for r in runs["hits"]]
    bare, mixed_run, hits_run = (max(runs[k], key=lambda r: r[0]) for k in ("bare", "mixed", "hits"))
    rows = [
        ("bare Flask app, same server", bare[0], "-", bare[2], 1.0),
        ("HTTP listener, 1 request in 10 a hit", mixed_run[0], f"{mixed_run[0] / 10:,.0f}", mixed_run[2],
         mixed_run[0] / bare[0]),
        ("HTTP listener, every request a hit", hits_run[0], f"{hits_run[0]:,.0f}", hits_run[2], hits_run[0] / bare[0]),
    ]
    table = ["| app | requests/s | hits/s | p99 latency | / bare |", "| --- | --- | --- | --- | --- |"]
    table += [f"| {a} | {b:,.0f} | {c} | {d} | {e:.2f} |" for a, b, c, d, e in rows]
    summary = (f"Best of {args.rounds} interleaved runs each. Hits stored in the runs shown: {mixed_run[3]:,} for "
               f"{mixed_run[1]:,} mixed requests, {hits_run[3]:,} for {hits_run[1]:,} canary requests "
               f"({'ok' if all(checks) else 'MISMATCH'} in every run).")
    setup = (f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s, waitress {args.server_threads} "
             f"threads, sink delay {args.sink_delay * 1000:g} ms, {platform.python_implementation()} "
             f"{platform.python_version()}, {_cpus()} CPUs shared by wrk and the server.")
    text = "\n".join(table + ["", summary, "", setup])
    print(text)
    if args.write_docs:
        doc = DOC.read_text(encoding="utf-8")
        if START in doc and END in doc:
            head, rest = doc.split(START, 1)
            doc = head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1]
            DOC.write_text(doc, encoding="utf-8")
    return 0 if all(checks) else 1


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    sys.exit(main())
