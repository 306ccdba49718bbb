"""Benchmark: wall-clock time of `canary demo`, the README's first command (after install).

    python bench/bench_demo.py            # 3 runs, each in a fresh temporary folder

Runs the installed `canary demo` as a subprocess (start-up, SQLite EHR of
1,000 patients, planting, the listener, the five attacks and their alerts,
verify, retire) and prints each time, the median and the machine's load.
The figure goes in README.md ("Quick start").
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    canary = Path(sys.executable).with_name("canary")
    times = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            result = subprocess.run([str(canary), "demo", "--dir", str(Path(folder) / "demo")],
                                    capture_output=True, text=True)
            times.append(time.perf_counter() - started)
            if result.returncode != 0:
                sys.exit(f"canary demo failed ({result.returncode}): {result.stderr[-500:]}")
    load = os.getloadavg()[0]
    print("runs: " + ", ".join(f"{t:.1f} s" for t in times))
    print(f"median {statistics.median(times):.1f} s, {os.cpu_count()} CPUs, load average {load:.1f} at the end")


if __name__ == "__main__":
    main()
