"""Benchmark: generate identities with the demo contacts, as `canary generate` does.

    python bench/bench_generate.py              # 100,000 identities, in process
    python bench/bench_generate.py --cli        # also time the real command, output to /dev/null

Prints identities per second and the total time including start-up (imports
and reference data loading). The figure goes in docs/identities.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def in_process(count: int, seed: int) -> None:
    started, cpu_started = time.perf_counter(), time.process_time()
    from canary.contacts import demo_contacts
    from canary.identity.generator import IdentityGenerator

    generator = IdentityGenerator(demo_contacts(), seed=seed, reserve_phones=False)
    generator.generate()  # loads the reference data
    ready, cpu_ready = time.perf_counter(), time.process_time()
    for _ in generator.generate_many(count - 1):
        pass
    done, cpu_done = time.perf_counter(), time.process_time()
    rate = (count - 1) / (done - ready)
    # CPU time is printed too: on a shared machine the wall clock also counts
    # the time other processes held the CPU.
    print(f"start-up (imports, reference data): {ready - started:6.2f} s wall, {cpu_ready - cpu_started:6.2f} s CPU")
    print(f"generation of {count:,} identities:  {done - ready:6.2f} s wall, {cpu_done - cpu_ready:6.2f} s CPU "
          f"({rate:,.0f} identities/s, {1e6 / rate:.0f} µs each)")
    print(f"total:                              {done - started:6.2f} s wall, {cpu_done - cpu_started:6.2f} s CPU")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


def command(count: int, seed: int) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = [sys.executable, "-c", "from canary.cli.main import main; main()", "generate",
            "--count", str(count), "--seed", str(seed)]
    started = time.perf_counter()
    with open(os.devnull, "w") as sink:
        subprocess.run(args, check=True, stdout=sink, env=env, cwd=ROOT / "bench")
    print(f"`canary generate --count {count}` (text output): {time.perf_counter() - started:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cli", action="store_true", help="also time the canary generate command")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    in_process(args.count, args.seed)
    if args.cli:
        command(args.count, args.seed)


if __name__ == "__main__":
    main()
