"""What the seeder writes, compared column by column with what GNU Health itself writes.

A fresh database is loaded from the real schema dump; GNU Health's own code
(proteus, in a GNU Health virtual environment, as a subprocess) configures
the site and registers patients the way the front desk does; the seeder
plants canaries in the same database; every canary row must have a shape the
application wrote (NULL / '' / booleans / timestamp relations / derived
values, support/gnuhealth_compare.py) and the related rows a real patient
has. Both the seeder's stock behaviour (a site with no patients yet) and its
learned behaviour (25 real patients) are checked. Retire then leaves the
application's rows as they were.

Needs CANARY_GNUHEALTH_PYTHON (5.0.6; .ci/run creates that environment and
sets CANARY_REQUIRE=gnuhealth) and, for 4.4.1, CANARY_GNUHEALTH44_PYTHON and
CANARY_GNUHEALTH44_SCHEMA.
"""

from __future__ import annotations

import pytest

from canary.model import Address, SourceSpec, VerifyState
from seeders.gnuhealth.seeder import GnuHealthSeeder
from support.app_databases import snapshot_tables
from support.gnuhealth_compare import differences, shapes, structure_problems
from support.gnuhealth_fixture import canary_identity
from support.gnuhealth_real import application_python, load, make_patients, rows

# Addresses in Brittany, where the reference patients live (and whose départements every pycountry has).
_CITY = Address(line1="12 rue de la Monnaie", line2="", postcode="35000", city="Rennes", insee_code="35238",
                departement="35")


def canaries(start: int) -> list:
    """A married woman (usual name: a later edit), a man, a woman with a second phone."""
    chosen = [i for i in range(start, start + 40) if canary_identity(i).married_name_used][:1]
    chosen += [i for i in range(start, start + 40) if i % 2 == 0][:1]
    chosen += [i for i in range(start, start + 40) if canary_identity(i).phone2 and i not in chosen][:1]
    return [canary_identity(i, address=_CITY) for i in chosen]


def plant(url: str, identities: list) -> tuple[list, str, object]:
    with GnuHealthSeeder(SourceSpec(name="chv", seeder="gnuhealth", options={}), url) as seeder:
        placements = [seeder.plant(i) for i in identities]
        assert all(seeder.verify(i, p).state is VerifyState.OK for i, p in zip(identities, placements))
        return placements, seeder.version.link, seeder.settings.site


def party_ids(placements: list) -> list[int]:
    return [next(r["key"]["id"] for r in p.rows if r["table"] == "party_party") for p in placements]


def assert_like_the_application(url: str, app_parties: list[int], placements: list, link: str, site) -> None:
    context = {"company": site.company_name, "company_id": site.company_id, "fed_country_id": site.fed_country_id}
    app_shapes, app_structures = shapes(url, app_parties, link, context)
    canary_shapes, canary_structures = shapes(url, party_ids(placements), link, context)
    problems = differences(app_shapes, canary_shapes) + structure_problems(app_structures, canary_structures)
    assert not problems, "canary rows GNU Health never writes:\n" + "\n".join(problems)


def retire_leaves_the_application_rows(url: str, placements: list) -> None:
    planted = {(r["table"], r["key"]["id"]) for p in placements for r in p.rows}
    before = snapshot_tables(url)
    with GnuHealthSeeder(SourceSpec(name="chv", seeder="gnuhealth", options={}), url) as seeder:
        for placement in reversed(placements):
            seeder.retire(placement)
    after = snapshot_tables(url)
    ours = {table for table, _ in planted}
    for table, content in before.items():
        if table not in ours:
            assert after[table] == content, table
        else:
            assert after[table] == [row for row in content if (table, row[0]) not in planted], table


@pytest.mark.parametrize("version, setup", [
    ("5.0", ["--setup-site"]),  # a hospital: company, federation country France
    ("5.0", []),  # a bare site: no company, no federation country
    ("4.4", ["--setup-site"]),
])
def test_canaries_are_written_as_gnu_health_writes_patients(postgres_url, tmp_path, version, setup):
    python = application_python(version)
    load(postgres_url, version, tmp_path)
    make_patients(python, postgres_url, tmp_path, 0, 1, *setup)  # configure the site, no patient yet

    stock, link, site = plant(postgres_url, canaries(100))  # the seeder's stock behaviour
    assert site.company_name == ("Centre Hospitalier de Vitré" if setup else None)
    assert site.fed_country == ("FRA" if setup else None)
    made = make_patients(python, postgres_url, tmp_path, 25, 2024, "--usual-name", "--edit-patient-every", "2")
    app_parties = [p["party"] for p in made["patients"]]
    assert rows(postgres_url, f"SELECT count(*) AS n FROM gnuhealth_patient WHERE {link} = ANY(:ids)",
                ids=app_parties)[0]["n"] == 25
    assert_like_the_application(postgres_url, app_parties, stock, link, site)

    learned, _, _ = plant(postgres_url, canaries(200))  # learned from the 25 patients GNU Health wrote
    assert_like_the_application(postgres_url, app_parties, learned, link, site)
    retire_leaves_the_application_rows(postgres_url, stock + learned)
