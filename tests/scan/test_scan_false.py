"""Real-looking rows never match: ordinary patients, and near misses built from canaries.

Ordinary rows share the canaries' surnames, first names and birth dates (same
reference tables), never their contact points. 200,000 rows run here in a
few seconds; bench/bench_scan.py scans millions (docs/scan.md).
"""

from __future__ import annotations

import gzip
import random
from datetime import datetime, timedelta, timezone

import pytest

from support import leakgen
from canary.registry import Registry
from canary.scan.service import scan

ROWS = 200_000


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("registry") / "registry.db"
    with Registry.open(f"sqlite:///{path}", create=True) as registry:
        w = leakgen.World(registry, seed=23)
        w.source("lis-rennes")
        w.source("dpi-brest")
        start = datetime(2024, 1, 1, tzinfo=timezone.utc)
        w.plant("lis-rennes", 120, start)
        w.plant("dpi-brest", 80, start + timedelta(days=30))
        yield w


def near_misses(world, rng: random.Random) -> list[str]:
    """Rows holding pieces of canaries, never a whole one."""
    rows = []
    for cid in sorted(world.records):
        p = world.identity(cid)
        other_day = p.birth_date + timedelta(days=rng.choice((1, -1, 31, 365)))
        swapped = p.birth_date.replace(day=p.birth_date.month, month=p.birth_date.day) \
            if p.birth_date.day <= 12 and p.birth_date.day != p.birth_date.month else other_day
        local, domain = p.email.split("@")
        nsn = p.phone[3:]
        rows += [
            f"{p.last_name};{p.first_name};{other_day:%d/%m/%Y};homonyme, autre date",
            f"{p.last_name.upper()};{p.first_name};{swapped:%d/%m/%Y};jour et mois inversés",
            f"{p.last_name};Marcel;{p.birth_date:%d/%m/%Y};même nom et date, autre prénom",
            f"Dupuis-Lemoine;{p.first_name};{p.birth_date:%d/%m/%Y};même prénom et date, autre nom",
            f"Kerbrat-Lemoine;{p.last_name};{p.birth_date:%d/%m/%Y};{'x' * 90};Dr {p.first_name} Rossi",
            f"{p.last_name} {p.first_name};sans date de naissance;{local}@gmail.com",
            f"Durand;Paul;{p.birth_date:%d/%m/%Y};Dr {p.first_name} {p.last_name};{p.birth_date:%d/%m/%Y}",
            f"{p.first_name}-Rose;{p.last_name}-Kerouac;{p.birth_date:%d/%m/%Y};prénom et nom composés",
            f"Durand;Paul;01/01/1960;{local}@orange.fr;{p.portal_login}@free.fr;x{p.portal_login}",
            f"Durand;Paul;01/01/1960;0{nsn}1;90{nsn};+33{nsn}7;{nsn[:4]} {nsn[4:]}",
            f"Durand;Paul;01/01/1960;{p.nir[:13]}{(int(p.nir[13:]) + 1) % 97:02d};{p.nir[:13]}123",
            f"Durand;Paul;01/01/1960;https://exemple.fr/{p.url_code}x;x{p.dns_label}.exemple.fr",
            f"Durand;Paul;01/01/1960;{p.email}.evil.example;x{p.email}",
        ]
    return [r + "\n" for r in rows]


def test_no_false_match_on_ordinary_and_near_miss_rows(world, tmp_path):
    rows = leakgen.OrdinaryRows(31, **world.avoid())
    rng = random.Random(7)
    path = tmp_path / "ordinary.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as handle:
        handle.write(";".join(leakgen.HEADER) + "\n")
        handle.writelines(rows.csv_lines(ROWS // 2))
        handle.writelines(near_misses(world, rng))
        handle.writelines(rows.csv_lines(ROWS // 2))
    (tmp_path / "paste.txt").write_text("".join(near_misses(world, rng)), encoding="utf-8")
    report = scan(world.registry, [tmp_path], jobs=2, use_cache=False)
    assert report.sources == []
    assert report.unconfirmed == []
    assert report.problems == []
    assert report.canaries_watched == 200


def test_a_name_alone_is_not_a_match_but_name_and_date_are(world, tmp_path):
    cid = sorted(world.records)[0]
    p = world.identity(cid)
    (tmp_path / "a.csv").write_text(f"{p.last_name};{p.first_name};M\n", encoding="utf-8")
    assert scan(world.registry, [tmp_path / "a.csv"], jobs=1, use_cache=False).sources == []
    (tmp_path / "b.csv").write_text(f"{p.last_name};{p.first_name};{p.birth_date:%d/%m/%Y}\n", encoding="utf-8")
    report = scan(world.registry, [tmp_path / "b.csv"], jobs=1, use_cache=False)
    assert [(f.source, f.analysis.found) for f in report.sources] == [(world.source_of(cid), [cid])]
