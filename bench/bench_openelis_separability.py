"""Benchmark: can `canary audit --separability` tell drip-planted canaries from an OpenELIS lab's patients?

    CANARY_REAL_SCHEMAS=/work/shared/schemas .venv/bin/python bench/bench_openelis_separability.py \
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--patients 2400] [--days 1000] \
        [--over 900] [--share 0.03] [--seed 3] [--only naive|drip] [--verbose]

Builds the OpenELIS test site twice on the current schema in PostgreSQL
(tests/support/openelis_site.py: its own population generator, requests and
results as the application writes them, patients coming back at the lab's
own pace) and plants 30 canaries through the openelis seeder (its footprint):

- naive: one batch at the end (`canary plant lis --count 30`);
- drip: `canary drip run` replayed over the site's last ``--over`` days
  (tests/support/openelis_drip.py: pace at 2 % of admissions, later requests
  through ``add_event``), the site's saves written in time order between runs.

Prints, for each, the ROC AUC (95 % CI) of `canary audit --separability`, the
best one-line rule's precision at recall 0.5, and the top giveaways; and
whether the export "patients with a result in the last 12 months" holds every
canary planted more than a month before. Figures are in docs/concealment.md.
Not a test: nothing here asserts. Scratch databases are created and dropped.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import sqlalchemy as sa  # noqa: E402

from support.openelis_drip import PARIS, audit, exported_canaries, plant_site  # noqa: E402


def run(server: str, name: str, naive: bool, args) -> None:
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    database = f"bench_elis_{name}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {database}"))
    url = sa.engine.make_url(server).set(database=database).render_as_string(hide_password=False)
    now = datetime.now(PARIS).replace(hour=11, minute=0, second=0, microsecond=0)
    while now.weekday() >= 5:
        now -= timedelta(days=1)
    try:
        started = time.perf_counter()
        planted = plant_site(url, Path(tempfile.mkdtemp(prefix="bench-elis-")), patients=args.patients,
                             days=args.days, over=args.over, now=now.astimezone(timezone.utc), seed=args.seed,
                             naive=naive, max_share=args.share, progress=print if args.verbose else None)
        built = time.perf_counter() - started
        started = time.perf_counter()
        report = audit(planted)
        audited = time.perf_counter() - started
        old, found = exported_canaries(planted, now.astimezone(timezone.utc))
        print(f"{name}: {planted.planted} canaries ({planted.events} later requests over {planted.runs} drip runs), "
              f"site and planting {built:.0f} s, audit {audited:.1f} s")
        print(f"  ROC AUC {report.auc:.2f} [{report.low:.2f}-{report.high:.2f}] ({report.model}), "
              f"{report.canaries} canaries against {report.compared} of {report.patients - report.canaries}, "
              f"{report.features} features")
        print(f"  best one-line rule at recall 0.5: precision {report.rule_precision:.2f} ({report.rule_feature})")
        print(f"  result export (last 12 months): {found} of the {old} canaries planted 1 to 12 months before")
        for give in report.giveaways:
            print(f"    {give.feature:<42} alone {give.auc:.2f}: canaries {give.canaries}; others {give.others}")
        planted.registry.close()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        admin.dispose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get(
        "CANARY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--patients", type=int, default=2400)
    parser.add_argument("--days", type=int, default=1000)
    parser.add_argument("--over", type=int, default=900)
    parser.add_argument("--share", type=float, default=0.03, help="drip.max_share")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--only", choices=("naive", "drip"))
    parser.add_argument("--verbose", action="store_true", help="print each drip run")
    args = parser.parse_args(argv)
    os.environ.setdefault("CANARY_OPERATOR", "bench")
    print(f"load average {os.getloadavg()[0]:.1f}")
    for name in ("naive", "drip"):
        if args.only in (None, name):
            run(args.postgres, name, name == "naive", args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
