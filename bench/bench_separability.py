"""Benchmark of `canary audit SOURCE --separability`: speed on a large site, AUC before and after.

    .venv/bin/python bench/bench_separability.py speed [--patients 100000]
    .venv/bin/python bench/bench_separability.py compare [--patients 3000] [--seed 1]
    .venv/bin/python bench/bench_separability.py openemr --mariadb URL [--patients 3000] [--seed 1]

``speed`` builds a realistic LIS site (tests/support/lis_site.py: its own
population generator, not canary/identity) of N patients in SQLite, plants 30
canaries through the generic SQL seeder, and times the whole command in a
fresh process (`canary audit lis --separability --json`, imports included).
Target: under a minute for 100,000 patients.

``compare`` plants 30 canaries into the same kind of site several ways and
prints the ROC AUC (95 % CI) and the top giveaways of each:

- naive: one batch today, caps lifted, catchment = the département (what
  docs/setup.md used to lead to);
- concealed: the defaults of #12: contact caps (3 per domain, 2 per block,
  with enough domains and blocks), catchment learned from the site, drip
  over the period the site's pace needs at 2 %, each canary inserted at its
  moment among the real registrations (ids and times interleaved as drip
  produces them), then `canary drip run`'s later events (add_due_events,
  run weekly up to today with drip.event_every = the site's mean gap between
  two result dates of a patient): the mapping's [[related]] footprint;
- the same two, read without the related-table features, and without the
  contact-point features (emails and phones: what the contact caps and the
  owned domains and blocks address), to show what is left for each part.

``openemr`` does the same on OpenEMR's real schema in MariaDB (URL: a server,
e.g. mysql+pymysql://root@127.0.0.1:3306/ ; a scratch database is created and
dropped): the site of tests/support/openemr_site.py, 30 canaries through the
openemr seeder, naive (one burst today, `canary plant --count 30`) and
concealed (drip over the period the site's pace needs, with the later visits
of `canary drip run`, as tests/seeders/openemr/test_openemr_concealment.py).

``openemr --mailboxes N`` gives the concealed run a pool of N watched mailboxes
at the common providers (contacts.mailbox_pool_file), spread over the providers
as the site's own patients are (tests/support/openemr_site.py PROVIDERS), each
naming a holder drawn from the name data: the canaries' emails are then at
gmail.com, orange.fr... instead of the owned domains.

Numbers are in docs/concealment.md. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from freezegun import freeze_time  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from canary.audit.features import build_features  # noqa: E402
from canary.audit.separability import giveaways, separability  # noqa: E402
from canary.audit.site import placed_refs  # noqa: E402
from canary.model import CanaryStatus  # noqa: E402
from canary.planting.events import add_due_events  # noqa: E402
from canary.planting.pace import check_schedule  # noqa: E402
from canary.planting.planter import open_seeder, plant  # noqa: E402
from canary.planting.schedule import draw_due_times  # noqa: E402
from support.lis_site import build_site, make_patients  # noqa: E402
from support.plant_helpers import add_source, new_registry, production_config  # noqa: E402
from support.sql_seeder_helpers import MAPPING, create_schema  # noqa: E402

PARIS = ZoneInfo("Europe/Paris")
CANARIES = 30
# A pool as a careful operator buys it: mobiles in 40 blocks of several operators, landlines of zone 02.
SPREAD_POOL = tuple(f"+33{prefix}{n:02d}{tail:04d}" for prefix in ("607", "650", "651", "601", "766")
                    for n in range(10, 18) for tail in (1123, 4756, 8391)) + tuple(
    f"+33299{n:02d}{tail:04d}" for n in range(10, 20) for tail in (2164, 6418))
DOMAINS = tuple(f"{name}.fr" for name in ("mel-famille", "boite-perso", "courrier-maison", "mes-mails",
                                          "la-boite-a-lettres", "mon-courriel", "posteperso", "courriel-foyer",
                                          "mel-maison", "boite-du-foyer", "mes-nouvelles"))


def speed(patients: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-sep-"))
    url = f"sqlite:///{work / 'lis.db'}"
    started = time.perf_counter()
    build_site(url, patients, seed=1)
    print(f"site of {patients} patients built in {time.perf_counter() - started:.1f} s")
    registry, config = new_registry(work)
    add_source(registry, "lis", "sql", url=url, mapping=str(MAPPING))
    plant(registry, config, "lis", CANARIES, seed=5)
    registry.close()
    pool = work / "pool.txt"
    from support.plant_helpers import POOL

    pool.write_text("\n".join(POOL), encoding="utf-8")
    (work / "canary.toml").write_text(
        f'[registry]\nurl = "sqlite:///{work / "registry.db"}"\n[contacts]\n'
        'email_domains = ["mel-famille.fr", "boite-perso.fr"]\ndns_zone = "mon-rdv-sante.fr"\n'
        'portal_url = "https://espace.mon-rdv-sante.fr/acces/"\nphone_pool_file = "pool.txt"\n',
        encoding="utf-8")
    canary = ROOT / ".venv" / "bin" / "canary"
    started = time.perf_counter()
    run = subprocess.run([str(canary), "--config", str(work / "canary.toml"), "audit", "lis", "--separability",
                          "--json"], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    data = json.loads(run.stdout)
    print(f"canary audit lis --separability: {elapsed:.1f} s wall (exit {run.returncode}), "
          f"AUC {data['auc']:.2f} [{data['auc_low']:.2f}-{data['auc_high']:.2f}], {data['features']} features, "
          f"{data['canaries']} canaries against {data['compared']} of {data['patients'] - data['canaries']}")


def compare(patients: int, seed: int) -> None:
    now = datetime.now(PARIS).replace(hour=11, minute=0, second=0, microsecond=0)
    while now.weekday() >= 5:
        now -= timedelta(days=1)
    tells: dict[str, dict[str, float]] = {}
    for name, concealed in (("naive", False), ("concealed", True)):
        work = Path(tempfile.mkdtemp(prefix=f"bench-sep-{name}-"))
        registry, audited = _planted_site(work, patients, seed, now, concealed)
        tells[name] = _tell_aucs(*audited)
        for label, strip in (("all features", False), ("without related-table features", True),
                             ("without contact-point features", "contacts")):
            rows = [_without_contacts(p) if strip == "contacts" else
                    replace(p, related={}, related_first={}) if strip else p for p in audited[0]]
            report = separability("lis", rows, audited[1])
            print(f"{name:<10} {label:<32} AUC {report.auc:.2f} [{report.low:.2f}-{report.high:.2f}] "
                  f"({report.model}); best one-line rule at recall 0.5: precision {report.rule_precision:.2f} "
                  f"({report.rule_feature})")
            for give in report.giveaways:
                print(f"{'':>12}{give.feature:<34} alone {give.auc:.2f}: canaries {give.canaries}; "
                      f"others {give.others}")
        registry.close()
    print("\nsingle-feature AUC of the tells the #12 settings address (naive -> concealed):")
    for feature in TELLS:
        print(f"  {feature:<34} {tells['naive'].get(feature, 0.5):.2f} -> {tells['concealed'].get(feature, 0.5):.2f}")


def _without_contacts(patient):
    """The patient as the audit sees it minus emails and phone numbers (what the contact caps address)."""
    return replace(patient, contacts=(), values={k: v for k, v in patient.values.items() if k != "tel"},
                   related={t: n for t, n in patient.related.items() if t != "contacts"},
                   related_first={t: f for t, f in patient.related_first.items() if t != "contacts"})


TELLS = ("patients.cree_le:age", "patients.cree_le:hour", "patients.modifie_le:delay", "email domain:patients",
         "email domain:recent_share", "phone block:patients", "phone block:recent_share",
         "patients.code_postal:share", "patients.ville:share")


def _tell_aucs(patients, flags) -> dict[str, float]:
    import numpy as np

    matrix = build_features(patients)
    every = giveaways(matrix, np.asarray(flags, dtype=bool), top=len(matrix.features))
    return {g.feature: g.auc for g in every}


def _planted_site(work: Path, patients: int, seed: int, now: datetime, concealed: bool):
    url = f"sqlite:///{work / 'lis.db'}"
    create_schema(url)
    rows = make_patients(patients, now=now.replace(tzinfo=None), seed=seed)
    registry, _ = new_registry(work)
    if concealed:
        config = production_config("sqlite://", pool=SPREAD_POOL, domains=DOMAINS)
        config = replace(config, contacts=replace(config.contacts, max_per_email_domain=3, max_per_phone_block=2))
        add_source(registry, "lis", "sql", url=url, mapping=str(MAPPING))
        admissions = [r["cree_le"] for r in rows[0] if r["cree_le"] >= now.replace(tzinfo=None) - timedelta(days=365)]
        period = _period_needed(admissions, now)
        print(f"concealed: drip over {period.days} days ({len(admissions)} registrations in the last year)")
        moments = draw_due_times(CANARIES, now - period, period - timedelta(days=1), random.Random(seed))
    else:
        config = production_config("sqlite://", pool=SPREAD_POOL, domains=DOMAINS[:2])
        add_source(registry, "lis", "sql", url=url, mapping=str(MAPPING), catchment=("35",))
        moments = []  # all at once, after the site's patients (below)
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    done = 0
    for index, moment in enumerate(moments):
        cut = moment.astimezone(PARIS).replace(tzinfo=None)
        upto = next((i for i, r in enumerate(rows[0]) if r["cree_le"] >= cut), len(rows[0]))
        _insert(engine, md, rows, done, upto, shift=index)
        done = upto
        with freeze_time(moment):
            plant(registry, config, "lis", 1, seed=seed * 1000 + index, batch_label=f"drip-{index}")
    _insert(engine, md, rows, done, len(rows[0]), shift=len(moments))
    engine.dispose()
    if moments:
        every = _site_event_gap(rows[3])
        written = _drip_events(registry, moments[0], now, every)
        print(f"concealed: {written} drip events (drip.event_every = {every.days} days, the site's mean gap)")
    if not concealed:
        with freeze_time(now):
            plant(registry, config, "lis", CANARIES, seed=seed, batch_label="naive")
    seeder = open_seeder(registry.get_source("lis"))
    try:
        audited = list(seeder.patients_for_audit())
    finally:
        seeder.close()
    ours = placed_refs(registry.list_canaries(source="lis", status=(CanaryStatus.PLANTED,)))
    return registry, (audited, [(p.ref[0], frozenset(p.ref[1])) in ours for p in audited])


def _site_event_gap(analyses) -> timedelta:
    """The site's mean gap between two successive result dates of one patient."""
    dates: dict[int, set] = {}
    for row in analyses:
        dates.setdefault(row["patient_id"], set()).add(row["prelevement"])
    gaps = [(b - a).days for days in dates.values() for a, b in zip(sorted(days), sorted(days)[1:])]
    return timedelta(days=round(sum(gaps) / len(gaps)))


def _drip_events(registry, start: datetime, now: datetime, every: timedelta) -> int:
    """`canary drip run`'s event step, once a week (at the timer's hour) from the first plant to today."""
    written, moment = 0, start
    while moment <= now:
        with freeze_time(moment):
            written += sum(1 for o in add_due_events(registry, moment, every) if o.error is None)
        moment += timedelta(days=7)
    return written


def _period_needed(admissions: list[datetime], now: datetime) -> timedelta:
    """The shortest drip period the site's pace allows for CANARIES at 2 % (check_schedule names it)."""
    from canary.errors import ConfigError

    try:
        check_schedule(CANARIES, timedelta(days=30), admissions, now.replace(tzinfo=None), 0.02, "lis")
        return timedelta(days=30)
    except ConfigError as err:
        days = int(str(err).split("use --over ")[1].split("d")[0])
        return timedelta(days=days + 1)


def _insert(engine, md, rows, start: int, end: int, shift: int) -> None:
    """Real patients start..end, their ids and IPPs moved past the ``shift`` canaries planted before them."""
    if end <= start:
        return
    wanted = {r["id"] for r in rows[0][start:end]}
    patients = [{**r, "id": r["id"] + shift, "ipp": r["ipp"] + shift} for r in rows[0][start:end]]
    with engine.begin() as conn:
        conn.execute(md.tables["patients"].insert(), patients)
        for table, batch in zip(("contacts", "portail", "analyses"), rows[1:]):
            chosen = [{**r, "patient_id": r["patient_id"] + shift} for r in batch if r["patient_id"] in wanted]
            if chosen:
                conn.execute(md.tables[table].insert(), chosen)


def openemr(server: str, patients: int, seed: int, mailboxes: int = 0) -> None:
    import uuid

    from canary.audit.site import audit_separability
    from support.openemr_site import concealed_config, create_schema, drip_plant, make_site, posted_text_columns
    from support.openemr_site import SiteLoader

    for name in ("concealed",) if mailboxes else ("naive", "concealed"):
        database = f"bench_emr_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(server)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {database}")
        url = server.rstrip("/") + "/" + database
        try:
            started = time.perf_counter()
            create_schema(url)
            engine = sa.create_engine(url)
            with engine.connect() as conn:
                now = conn.execute(sa.text("SELECT NOW()")).scalar().replace(microsecond=0)
            engine.dispose()
            site = make_site(now, patients, seed=seed, posted=posted_text_columns(url))
            work = Path(tempfile.mkdtemp(prefix=f"bench-emr-{name}-"))
            registry, _ = new_registry(work)
            config = concealed_config(f"sqlite:///{work / 'registry.db'}", site=site, mailboxes=mailboxes, seed=seed)
            if mailboxes:
                name = f"mailboxes ({mailboxes})"
            add_source(registry, "emr", "openemr", url=url)
            if name == "naive":
                loader = SiteLoader(url, site)
                loader.load_until(None)
                loader.close()
                plant(registry, config, "emr", CANARIES, seed=seed, batch_label="naive")
            else:
                period = drip_plant(url, site, registry, config, "emr", seed=seed)
                print(f"concealed: drip over {period.days} days")
            report = audit_separability(registry, config, "emr")
            print(f"{name:<10} AUC {report.auc:.2f} [{report.low:.2f}-{report.high:.2f}] ({report.model}), "
                  f"{report.features} features; best one-line rule at recall 0.5: precision "
                  f"{report.rule_precision:.2f} ({report.rule_feature}); {time.perf_counter() - started:.0f} s, "
                  f"load average {os.getloadavg()[0]:.1f}")
            for give in report.giveaways:
                print(f"{'':>12}{give.feature:<40} alone {give.auc:.2f}: canaries {give.canaries}; "
                      f"others {give.others}")
            registry.close()
        finally:
            sa.create_engine(url).dispose()
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database}")
            admin.dispose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("speed", "compare", "openemr"))
    parser.add_argument("--mariadb", default="mysql+pymysql://root@127.0.0.1:3306/",
                        help="openemr mode: the MariaDB server (a scratch database is made there)")
    parser.add_argument("--patients", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mailboxes", type=int, default=0,
                        help="openemr mode: concealed run only, with this many watched mailboxes at the providers")
    args = parser.parse_args(argv)
    os.environ.setdefault("CANARY_OPERATOR", "bench")
    if args.mode == "speed":
        speed(args.patients or 100_000)
    elif args.mode == "openemr":
        openemr(args.mariadb, args.patients or 3000, args.seed, args.mailboxes)
    else:
        compare(args.patients or 3000, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
