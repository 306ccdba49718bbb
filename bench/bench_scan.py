"""Benchmark: `canary scan` against `rg -F -f` on a big realistic CSV, side by side.

    python bench/bench_scan.py                    # 500 MB, 1,000 and 100,000 canaries
    python bench/bench_scan.py --mb 100 --canaries 1000

Set-up (cached in --dir, reused by later runs): a registry of the largest
canary count (identities from the generator, written in one transaction: a
bench shortcut), smaller registries holding its first canaries, and a CSV of
ordinary rows (tests/leakgen.py) with canary rows of the smallest registry
spread through it in varied writings. Then, for each canary count:

* `canary scan` once to compile and cache the pattern set (compile time shown);
* `rg -F -f` with every literal the scanner looks for: each token writing
  (all phone and NIR writings) and the fingerprint literals, in lower, upper
  and title case since rg -F is case-sensitive and the scan is not (when one
  rg cannot hold them all, as at 100,000 canaries, it is given them in 2-8
  runs of an equal share, times summed); rg with the token writings only;
  and rg with one writing per token (what a user might try first: the
  values as the registry holds them);
* `canary scan` again, whole process (start, registry, cached patterns, two
  worker processes, attribution, JSON output), with its peak memory;
* at the smallest canary count, `canary scan` of the file's first fifth too:
  peak memory must not grow with the file's size.

Before each timed command the leak and that command's own input (its literal
list, the pattern cache) are read into the page cache.

The figures go in docs/scan.md. The machine's load is printed, and a second
table gives each command's CPU time (user + system, every process): on a
shared machine the wall times swing with the other jobs, the CPU times much
less; compare the columns of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

SEED = 7


def _pool(count: int) -> tuple[str, ...]:
    return tuple(f"+33607{n:06d}" for n in range(0, 2 * count, 2))[:count]


def _contacts(count: int):
    from canary.contacts import ContactPoints

    return ContactPoints(email_domains=("mel-famille.fr", "boite-perso.fr"), dns_zone="mon-rdv-sante.fr",
                         portal_url="https://espace.mon-rdv-sante.fr/acces/", phone_pool=_pool(count + 10))


def identities(workdir: Path, count: int) -> list[dict]:
    cached = workdir / f"identities-{count}.jsonl"
    if cached.exists():
        return [json.loads(line) for line in cached.read_text(encoding="utf-8").splitlines()]
    from canary.identity.generator import IdentityGenerator

    started = time.perf_counter()
    generator = IdentityGenerator(_contacts(count), seed=SEED)
    people = [generator.generate().to_dict() for _ in range(count)]
    cached.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in people), encoding="utf-8")
    print(f"  generated {count:,} identities in {time.perf_counter() - started:.0f} s")
    return people


def registry(workdir: Path, people: list[dict], count: int) -> str:
    """A registry of the first ``count`` identities, bulk-written (bench set-up only)."""
    path = workdir / f"registry-{count}.db"
    url = f"sqlite:///{path}"
    if path.exists():
        return url
    import sqlalchemy as sa

    from canary.model import Identity, SourceSpec
    from canary.registry import Registry
    from canary.registry.records import fold
    from canary.registry.schema import canaries, tokens
    from canary.tokens import tokens_of

    with Registry.open(url, create=True) as reg:
        names = ("lis-rennes", "dpi-brest", "rad-nantes")
        for name in names:
            reg.add_source(SourceSpec(name=name, seeder="sql", url_env="X"))
        batches = {name: reg.new_batch(name, f"{name}-bench", "bench", count) for name in names}
        start = datetime(2023, 1, 1, tzinfo=timezone.utc)
        with reg._tx(write=True) as connection:  # one transaction: bench set-up shortcut
            source_ids = dict(connection.execute(sa.text("SELECT name, id FROM sources")).all())
            rows, token_rows = [], []
            for i, person in enumerate(people[:count]):
                name = names[i % 3]
                at = start + timedelta(minutes=i)
                rows.append({"id": i + 1, "source_id": source_ids[name], "batch_id": batches[name].id,
                             "status": "planted", "identity": person, "created_at": at, "planted_at": at})
                for token in tokens_of(Identity.from_dict(person)):
                    token_rows.append({"canary_id": i + 1, "kind": token.kind.value,
                                       "value": fold(token.kind, token.value)})
            connection.execute(canaries.insert(), rows)
            connection.execute(tokens.insert(), token_rows)
    return url


def csv_file(workdir: Path, megabytes: int, people: list[dict], spread: int) -> tuple[Path, int]:
    """Ordinary rows with ``spread`` canary rows (the first identities) in varied writings."""
    path = workdir / f"leak-{megabytes}mb.csv"
    marker = workdir / f"leak-{megabytes}mb.canaries"
    if path.exists() and marker.exists():
        return path, int(marker.read_text())
    from support import leakgen
    from canary.model import Identity

    started = time.perf_counter()
    who = [Identity.from_dict(p) for p in people]
    avoid = {"avoid_phones": [p for i in who for p in (i.phone, i.phone2) if p],
             "avoid_nirs": [i.nir for i in who],
             "avoid_fingerprints": [(n, f, i.birth_date) for i in who for n in {i.last_name, i.birth_name}
                                    for f in i.first_names[:1]]}
    rows = leakgen.OrdinaryRows(SEED, **avoid)
    rng = random.Random(SEED)
    target = megabytes * 1_000_000
    canary_lines = [leakgen.to_csv([_canary(leakgen, i, rng)], header=False) for i in who[:spread]]
    every = max(1, target // 180 // max(1, spread))
    written = 0
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(";".join(leakgen.HEADER) + ";portail\n")
        pending = iter(canary_lines)
        while written < target:
            block = "".join(rows.csv_lines(every))
            handle.write(block)
            written += len(block)
            line = next(pending, None)
            if line is not None:
                handle.write(line)
    marker.write_text(str(spread))
    print(f"  wrote {path.stat().st_size / 1e6:,.0f} MB of rows in {time.perf_counter() - started:.0f} s")
    return path, spread


def _canary(leakgen, identity, rng):
    row = leakgen.canary_row(identity, rng)
    return {k: row.get(k, "") for k in ("ipp", "nom", "nom_naissance", "prenom", "sexe", "date_naissance",
                                        "adresse", "code_postal", "ville", "telephone", "email", "nir")} | \
        {"medecin": "Dr Paul Girard", "visite": "01/02/2024", "service": "Urgences", "portail": row.get("portail", "")}


def config(workdir: Path, url: str) -> Path:
    path = workdir / f"canary-{abs(hash(url))}.toml"
    path.write_text(f'[registry]\nurl = "{url}"\n\n[contacts]\nemail_domains = ["mel-famille.fr", "boite-perso.fr"]\n'
                    f'dns_zone = "mon-rdv-sante.fr"\nportal_url = "https://espace.mon-rdv-sante.fr/acces/"\n'
                    f'phone_pool = ["+33607000000"]\n', encoding="utf-8")
    return path


def literals(url: str, workdir: Path, count: int) -> tuple[Path, Path, Path, int]:
    from canary.model import TokenKind
    from canary.registry import Registry, scanstore
    from canary.scan import patterns

    with Registry.open(url) as reg:
        rows = list(scanstore.pattern_rows(reg))
    built = patterns.build(rows, "hyperscan")
    # What a user might try first: each token once, as the registry holds it (a phone as 0XXXXXXXXX).
    one = {("0" + value[3:] if TokenKind(kind) is TokenKind.PHONE else value).encode()
           for row in rows for kind, value in row.tokens}
    every, tokens = set(), set()
    for i, literal in enumerate(built.literals):
        cases = {literal, literal.upper(), literal.title() if literal.isascii() else literal,
                 literal[:1].upper() + literal[1:]}
        every |= cases
        if built.roles[i] not in (patterns.SURNAME, patterns.FIRST_NAME, patterns.BIRTH_DATE, 0):
            tokens |= cases
    paths = workdir / f"rg-all-{count}.txt", workdir / f"rg-tokens-{count}.txt", workdir / f"rg-one-{count}.txt"
    paths[0].write_bytes(b"\n".join(sorted(every)) + b"\n")
    paths[1].write_bytes(b"\n".join(sorted(tokens)) + b"\n")
    paths[2].write_bytes(b"\n".join(sorted(one)) + b"\n")
    return paths[0], paths[1], paths[2], len(built.literals)


RG_MEMORY = 12 << 30  # ripgrep given millions of literals took 21 GB and was killed by the kernel


def _cap_memory() -> None:
    """In the ripgrep child: its address space capped at RG_MEMORY, and it is the one process the
    kernel kills first should the machine run out of memory anyway (not a database server)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (RG_MEMORY, RG_MEMORY))
    try:
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass


def in_page_cache(*paths: Path) -> None:
    """Read these files (the leak, the command's own input) before a timed command: ripgrep given
    millions of literals takes up to 21 GB and pushes them out of the page cache, and whoever
    runs next read them back from disk (a cached scan took 21 s and 29 s of CPU after it, 11 s and
    19 s before it, in one run)."""
    for path in paths:
        for file in ([path] if path.is_file() else sorted(path.glob("*")) if path.is_dir() else []):
            with open(file, "rb") as handle:
                while handle.read(16 << 20):
                    pass


def rg_in_parts(rg: str, literals: Path, leak: Path) -> tuple[float, float, int]:
    """ripgrep given every literal when one run cannot hold them (100,000 canaries: over 21 GB):
    in as few runs of an equal share of them (2 to 8) as each fit in RG_MEMORY, what a user of
    ripgrep would have to do. (wall seconds, CPU seconds, runs), summed; NaNs when 8 do not fit."""
    lines = literals.read_bytes().splitlines()
    for runs in range(2, 9):
        wall = cpu = 0.0
        for k in range(runs):
            part = literals.with_name(f"{literals.stem}-{k + 1}-of-{runs}.txt")
            part.write_bytes(b"\n".join(lines[k::runs]) + b"\n")
            in_page_cache(leak, part)
            seconds, _, _, cpu_seconds = timed([rg, "-F", "-c", "-f", str(part), str(leak)], capped=True)
            if seconds != seconds:
                break
            wall, cpu = wall + seconds, cpu + cpu_seconds
        else:
            return wall, cpu, runs
    return float("nan"), float("nan"), 0


def times(other: float, scan: float) -> str:
    """How many times faster the scan ran than ``other``; "-" when ``other`` failed (NaN)."""
    return "-" if other != other else f"{other / scan:.1f}x"


def timed(args: list[str], env: dict | None = None, capped: bool = False) -> tuple[float, float, str, float]:
    """(wall seconds, peak RSS in MB of its largest process, stdout, CPU seconds: user + system
    of it and its children), through GNU time; with ``capped``, address space limited to
    RG_MEMORY and a failure timed as NaN. On a shared machine the CPU time moves less than
    the wall time."""
    report = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-time-{os.getpid()}.txt"
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", str(report), *args], capture_output=True, text=True,
                          env=env, preexec_fn=_cap_memory if capped else None)
    wall = time.perf_counter() - started
    if capped and done.returncode not in (0, 1):
        print(f"  {args[0]} failed ({done.returncode}, memory capped at {RG_MEMORY >> 30} GB): "
              f"{done.stderr.strip()[-200:]}")
        return float("nan"), float("nan"), "", float("nan")
    if done.returncode not in (0, 1):
        raise SystemExit(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    peak, user, system = report.read_text().split()[-3:]
    return wall, int(peak) / 1024, done.stdout, float(user) + float(system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--canaries", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--spread", type=int, default=1000, help="canary rows in the CSV")
    parser.add_argument("--dir", default="/tmp/canary-bench")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rg-memory", type=int, default=12, metavar="GB",
                        help="address space ripgrep may use (default %(default)s); given every literal of 100,000 "
                             "canaries it needs about 20 GB")
    parser.add_argument("--reuse-cache", action="store_true",
                        help="keep the compiled patterns of an earlier run (the first scan is then not a compile)")
    args = parser.parse_args()
    global RG_MEMORY
    RG_MEMORY = args.rg_memory << 30
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    rg = shutil.which("rg")
    if rg is None:
        raise SystemExit("ripgrep is needed: apt-get install -y ripgrep")
    print("set-up")
    people = identities(workdir, max(args.canaries))
    leak, spread = csv_file(workdir, args.mb, people, min(args.spread, min(args.canaries)))
    size = leak.stat().st_size
    results, cpus = [], []
    for count in sorted(args.canaries):
        url = registry(workdir, people, count)
        every, tokens, one, n_literals = literals(url, workdir, count)
        cache = workdir / f"cache-{count}"
        env = dict(os.environ, CANARY_CONFIG=str(config(workdir, url)), CANARY_SCAN_CACHE=str(cache),
                   PYTHONPATH=str(ROOT))
        scan_cmd = scan_command(leak, args.jobs)
        if not args.reuse_cache:
            shutil.rmtree(cache, ignore_errors=True)
        in_page_cache(leak, cache)
        cold, cold_mem, _, cold_cpu = timed(scan_cmd, env)
        in_page_cache(leak, every)
        rg_all, rg_all_mem, out_all, rg_all_cpu = timed([rg, "-F", "-c", "-f", str(every), str(leak)], capped=True)
        rg_runs = 1
        if rg_all != rg_all:
            rg_all, rg_all_cpu, rg_runs = rg_in_parts(rg, every, leak)
        in_page_cache(leak, tokens)
        rg_tok, _, _, rg_tok_cpu = timed([rg, "-F", "-c", "-f", str(tokens), str(leak)], capped=True)
        in_page_cache(leak, one)
        rg_one, _, _, rg_one_cpu = timed([rg, "-F", "-c", "-f", str(one), str(leak)], capped=True)
        in_page_cache(leak, cache)
        warm, warm_mem, out, warm_cpu = timed(scan_cmd, env)
        data = json.loads(out)
        found = sum(s["found"] for s in data["sources"])
        results.append((count, n_literals, rg_all, rg_tok, rg_one, warm, warm_mem, cold, cold_mem, found, rg_runs))
        cpus.append((count, rg_all_cpu, rg_tok_cpu, rg_one_cpu, warm_cpu, cold_cpu))
        print(f"  {count:,} canaries: rg all {rg_all:.1f} s ({rg_runs} runs), rg tokens {rg_tok:.1f} s, rg one {rg_one:.1f} s, "
              f"scan {warm:.1f} s (cold {cold:.1f} s, {cold_mem:,.0f} MB), found {found}; "
              f"load average {os.getloadavg()[0]:.2f}")
    small = prefix(workdir, leak, size // 5)
    fewest = min(args.canaries)
    url = registry(workdir, people, fewest)
    env = dict(os.environ, CANARY_CONFIG=str(config(workdir, url)), CANARY_SCAN_CACHE=str(workdir / f"cache-{fewest}"),
               PYTHONPATH=str(ROOT))
    in_page_cache(small, workdir / f"cache-{fewest}")
    small_wall, small_mem, _, _ = timed(scan_command(small, args.jobs), env)
    load = os.getloadavg()[0]
    print(f"\n{size / 1e6:,.0f} MB CSV, {spread:,} canary rows, {args.jobs} scan processes, "
          f"{os.cpu_count()} CPUs, load average {load:.2f}\n")
    print("| canaries | literals | rg -F all literals | rg -F token writings | rg -F one writing per token "
          "| canary scan | vs rg all | vs rg tokens | vs rg one writing | scan peak RSS "
          "| first scan (compiles): time, peak RSS | canaries found |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count, n_lit, rg_all, rg_tok, rg_one, warm, mem, cold, cold_mem, found, rg_runs in results:
        def rate(seconds, runs=1):
            if seconds != seconds:  # NaN: ripgrep failed
                return f"failed (over {RG_MEMORY >> 30} GB)"
            parts = f", in {runs} runs of 1/{runs} of them (one needs over {RG_MEMORY >> 30} GB)" if runs > 1 else ""
            return f"{seconds:.1f} s ({size / seconds / 1e6:,.0f} MB/s){parts}"
        print(f"| {count:,} | {n_lit:,} | {rate(rg_all, rg_runs)} | {rate(rg_tok)} | {rate(rg_one)} | {rate(warm)} "
              f"| {times(rg_all, warm)} | {times(rg_tok, warm)} | {times(rg_one, warm)} | {mem:,.0f} MB "
              f"| {cold:.1f} s, {cold_mem:,.0f} MB | {found:,} |")
    print("\nCPU seconds (user + system, every process) of the same commands:\n")
    print("| canaries | rg -F all literals | rg -F token writings | rg -F one writing per token | canary scan "
          "| vs rg all | vs rg tokens | vs rg one writing | first scan |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count, rg_all, rg_tok, rg_one, warm, cold in cpus:
        def cpu(seconds):
            return "failed" if seconds != seconds else f"{seconds:.1f} s"

        print(f"| {count:,} | {cpu(rg_all)} | {cpu(rg_tok)} | {cpu(rg_one)} | {cpu(warm)} | {times(rg_all, warm)} "
              f"| {times(rg_tok, warm)} | {times(rg_one, warm)} | {cpu(cold)} |")
    big_mem = next(r[6] for r in results if r[0] == fewest)
    print(f"\nmemory against file size ({fewest:,} canaries): {small.stat().st_size / 1e6:,.0f} MB in "
          f"{small_wall:.1f} s, peak RSS {small_mem:,.0f} MB; {size / 1e6:,.0f} MB, peak RSS {big_mem:,.0f} MB")


def prefix(workdir: Path, leak: Path, size: int) -> Path:
    """The first ``size`` bytes of ``leak`` or so, cut after a line end."""
    path = workdir / f"{leak.stem}-first-{size // 1_000_000}mb.csv"
    if not path.exists():
        with open(leak, "rb") as source, open(path, "wb") as out:
            data = source.read(size)
            out.write(data[:data.rfind(b"\n") + 1])
    return path


def scan_command(path: Path, jobs: int) -> list[str]:
    return [sys.executable, "-c", "from canary.cli.main import cli; from canary.cli.scan import scan; "
            "cli.add_command(scan) if 'scan' not in cli.commands else None; cli()",
            "scan", str(path), "--json", "--jobs", str(jobs)]


if __name__ == "__main__":
    main()
