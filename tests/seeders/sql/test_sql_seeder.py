"""The generic SQL seeder on SQLite, MariaDB and PostgreSQL with one mapping.

The target holds 300 "real" patients (with contacts, portal accounts and
results). Every test checks that the real rows are untouched, byte for byte.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from canary.errors import MappingError, SourceError
from canary.model import Placement, SourceSpec, VerifyState
from canary.planting.catalog import create_seeder
from seeders.sql.seeder import SqlSeeder
from seeders.common.transforms import strip_accents
from support.sql_seeder_helpers import (
    MAPPING, count_rows, create_schema, execute, make_identity, populate_real, snapshot, source_spec,
)

TABLES = ("patients", "contacts", "portail", "analyses")


@pytest.fixture
def lis_url(any_db_url):
    create_schema(any_db_url)
    populate_real(any_db_url)
    return any_db_url


@pytest.fixture
def seeder(lis_url):
    s = create_seeder(source_spec(), lis_url)
    s.open()
    yield s
    s.close()


def _without(snap: dict[str, list[tuple]], planted: list[Placement]) -> dict[str, list[tuple]]:
    """The snapshot minus the planted rows (keys are the first column of each table)."""
    keys = {(row["table"], next(iter(row["key"].values()))) for p in planted for row in p.rows}
    return {t: [r for r in rows if (t, r[0]) not in keys] for t, rows in snap.items()}


def _mapping_variant(tmp_path, old: str, new: str):
    text = MAPPING.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "variant.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return source_spec(path)


def test_plant_200_verify_retire_leaves_every_other_row_untouched(lis_url, seeder):
    before = snapshot(lis_url)
    identities = [make_identity(i) for i in range(200)]
    seeder.check_fits(identities)
    assert not any(seeder.collides(i) for i in identities)

    placements = [seeder.plant(i) for i in identities]

    during = snapshot(lis_url)
    assert _without(during, placements) == before  # no real row changed
    assert len(during["patients"]) == 300 + 200
    assert len(during["contacts"]) == 300 + 400
    assert len(during["portail"]) == 300  # portal accounts come later (at = "later"), never at registration
    assert len(during["analyses"]) == 300 + 200  # the site has one result per patient and date
    # Placements survive the registry's JSON round trip, and verify from it.
    stored = [Placement.from_dict(json.loads(json.dumps(p.to_dict()))) for p in placements]
    states = {seeder.verify(i, p).state for i, p in zip(identities, stored)}
    assert states == {VerifyState.OK}

    # Planted rows look like the application's: no marker, values as mapped.
    ident, first = identities[1], placements[1].rows
    patient = first[0]["values"]
    assert [r["table"] for r in first] == ["patients", "contacts", "contacts", "analyses"]
    assert patient["nom"] == strip_accents(ident.last_name).upper()
    assert patient["nom_naissance"] == strip_accents(ident.birth_name).upper() != patient["nom"]
    assert patient["prenoms"] == " ".join(ident.first_names)
    assert patient["sexe"] == "F"
    assert patient["date_naissance"] == ident.birth_date.isoformat()
    assert patient["naissance_txt"] == ident.birth_date.strftime("%d/%m/%Y")
    assert patient["tel"] == "06 10 00 00 01"
    assert patient["ipp"] > 5000 + 300 * 3  # max+1 continues the real numbering
    assert first[1]["values"]["patient_id"] == first[0]["key"]["id"] == first[3]["values"]["patient_id"]
    assert first[2]["values"]["valeur"] == "06.10.00.00.01"
    assert first[3]["values"]["prelevement"] == patient["cree_le"][:10]  # a result on the registration day
    assert first[3]["values"]["code"] == "NFS"  # the only code the site uses
    # Drawn from the site, not from the canary's GP: every real patient has this doctor.
    assert patient["medecin"] == "DR MOREAU CLAIRE" and patient["traitements"] == ""

    for placement in stored:
        seeder.retire(placement)
    assert snapshot(lis_url) == before  # exactly the planted rows are gone


def test_deleted_row_is_missing_and_edited_row_is_altered(lis_url, seeder):
    identities = [make_identity(i) for i in range(3)]
    placements = [seeder.plant(i) for i in identities]
    contact_id = placements[0].rows[2]["key"]["id"]
    execute(lis_url, "DELETE FROM contacts WHERE id = :id", id=contact_id)
    patient_id = placements[1].rows[0]["key"]["id"]
    execute(lis_url, "UPDATE patients SET tel = '06 99 99 99 99' WHERE id = :id", id=patient_id)
    # The application rewriting its own timestamps is not an alteration.
    other_id = placements[2].rows[0]["key"]["id"]
    execute(lis_url, "UPDATE patients SET modifie_le = '2031-01-01 00:00:00' WHERE id = :id", id=other_id)

    missing = seeder.verify(identities[0], placements[0])
    altered = seeder.verify(identities[1], placements[1])
    assert missing.state is VerifyState.MISSING
    assert any(d.startswith("contacts row id=") for d in missing.details)
    assert altered.state is VerifyState.ALTERED
    assert altered.details == ("patients.tel changed",)
    assert seeder.verify(identities[2], placements[2]).state is VerifyState.OK

    # Retire copes with the row already gone and removes the rest.
    seeder.retire(placements[0])
    assert seeder.verify(identities[0], placements[0]).details[0].startswith("patients row")


# (text in lis_mapping.toml, replacement, expected in the one-line error)
MISFITS = [
    ('rpps = { field = "gp.rpps", fill = "site" }', 'rpps_x = { field = "gp.rpps" }',
     "table 'patients', column 'rpps_x', no such column"),
    ('resultat = { site', 'resultats = { site', "table 'analyses', column 'resultats', no such column"),
    ('link = "patient_id"\nwhen', 'link = "patient"\nwhen', "table 'analyses', column 'patient', no such column"),
    ('name = "analyses"', 'name = "analyse"', "table 'analyse', no such table"),
    ('adresse1 = { field = "address.line1" }\n', "", "column 'adresse1', is NOT NULL without a default"),
    ('name = "portail"', 'name = "portails"', "table 'portails', no such table"),
    ('date_naissance = { field = "birth_date" }', 'date_naissance = { field = "birth_date", format = "%d/%m/%Y" }',
     "column 'date_naissance', is DATE but the mapping writes text"),
    ('actif = { const = 1 }', 'actif = { generate = "autoincrement" }',
     "table 'portail', column 'actif', is not numbered by the database"),
    ('key = ["jeton"]', 'key = ["secret"]', "table 'portail', key (secret) is not unique in the table"),
    ('jeton = { generate = "uuid4-hex" }', 'jeton = { generate = "uuid4" }', None),  # 36 > CHAR(32): per value
]


def test_mapping_that_does_not_fit_is_refused_before_any_write(lis_url, tmp_path):
    before = snapshot(lis_url)
    for old, new, expected in MISFITS:
        s = create_seeder(_mapping_variant(tmp_path, old, new), lis_url)
        with pytest.raises(MappingError) as err:
            s.open()
            s.check_fits([make_identity(1)])
            s.plant(make_identity(1))
        s.close()
        message = str(err.value)
        assert message.startswith(str(tmp_path / "variant.toml") + ": table '"), message
        assert expected is None or expected in message, message
        assert "\n" not in message
    assert "column 'jeton', is CHAR(32): a value of 36 characters does not fit" in message

    # A value too long for its column, in one identity of the batch.
    fine = [make_identity(i) for i in range(5)]
    too_long = make_identity(5, last_name="Wolfeschlegelsteinhausenbergerdorff-Montmorency")  # 47 > 40
    with create_seeder(source_spec(), lis_url) as seeder:
        with pytest.raises(MappingError, match=r"table 'patients', column 'nom', is VARCHAR\(40\): a value of 47"):
            seeder.check_fits(fine + [too_long])
        with pytest.raises(MappingError):
            seeder.plant(too_long)
    assert snapshot(lis_url) == before


def test_failure_in_a_later_table_leaves_nothing(lis_url, seeder):
    before = snapshot(lis_url)
    # portail.login is UNIQUE: the portal account of the first drip event fails.
    clash = make_identity(1, portal_login="real00042")
    placement = seeder.plant(clash)
    planted = snapshot(lis_url)
    with pytest.raises(SourceError, match="source 'lis': insert into portail failed"):
        seeder.add_event(clash, placement, datetime.now(timezone.utc))
    assert snapshot(lis_url) == planted  # neither the portal account nor the event's results
    seeder.retire(placement)
    assert snapshot(lis_url) == before
    # And the seeder is still usable.
    placement = seeder.plant(make_identity(2))
    assert seeder.verify(make_identity(2), placement).state is VerifyState.OK


def test_collides_with_existing_nir_and_with_name_and_birth_date(lis_url, seeder):
    engine = sa.create_engine(lis_url)
    patients = sa.Table("patients", sa.MetaData(), autoload_with=engine)  # typed: dates come back as dates
    with engine.connect() as conn:
        real = conn.execute(sa.select(patients).where(patients.c.id == 17)).one()
    engine.dispose()
    fresh = make_identity(3)
    assert not seeder.collides(fresh)
    assert seeder.collides(make_identity(3, nir=real.nir.strip()))
    # Same name (in another case) and birth date, another NIR.
    assert seeder.collides(make_identity(3, last_name=real.nom.lower(), birth_name=real.nom.lower(),
                                         first_names=(real.prenom,), birth_date=real.date_naissance))
    assert not seeder.collides(make_identity(3, last_name=real.nom, first_names=(real.prenom,)))


def test_locate_finds_an_unrecorded_plant_and_only_its_rows(lis_url, seeder):
    identities = [make_identity(i) for i in range(4)]
    placements = [seeder.plant(i) for i in identities]
    for identity, placement in zip(identities, placements):
        assert seeder.locate(identity) == placement
    assert seeder.locate(make_identity(50)) is None
    # Found by email when the NIR was edited; the edited row is still ours.
    execute(lis_url, "UPDATE patients SET nir = '199999999999999' WHERE id = :id",
            id=placements[2].rows[0]["key"]["id"])
    located = seeder.locate(identities[2])
    assert [r["key"] for r in located.rows] == [r["key"] for r in placements[2].rows]


def test_plan_and_a_bogus_retire_write_nothing(lis_url, seeder):
    before = snapshot(lis_url)
    planned = seeder.plan(make_identity(9))
    assert [p.table for p in planned] == ["patients", "contacts", "contacts", "analyses"]
    assert planned[0].values["id"] is None and planned[0].values["ipp"] is None
    assert planned[1].values["patient_id"] is None
    assert planned[0].values["nom"] == strip_accents(make_identity(9).last_name).upper()
    # A placement whose key is not unique (a hand-edited registry): refuse, delete nothing.
    bogus = Placement(rows=({"table": "analyses", "key": {"code": "NFS"}, "values": {}},))
    with pytest.raises(SourceError, match="matches 300 rows; nothing was deleted"):
        seeder.retire(bogus)
    assert snapshot(lis_url) == before


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://canary:S3cretPw!@127.0.0.1:1/lis",
    "mysql+pymysql://canary:S3cretPw!@127.0.0.1:1/lis",
])
def test_unreachable_database_is_a_source_error_without_password(url):
    s = create_seeder(source_spec(), url)
    with pytest.raises(SourceError) as err:
        s.open()
    message = str(err.value)
    assert message.startswith("source 'lis': cannot connect to ")
    assert "S3cretPw" not in message and "***" in message
    assert "127.0.0.1:1" in message


def test_missing_sqlite_file_is_not_created(tmp_path):
    path = tmp_path / "nope.db"
    with pytest.raises(SourceError, match="no such file"):
        create_seeder(source_spec(), f"sqlite:///{path}").open()
    assert not path.exists()


def test_missing_mapping_file_and_missing_mapping(sqlite_url, tmp_path):
    create_schema(sqlite_url)
    with pytest.raises(MappingError, match="not found"):
        create_seeder(source_spec(tmp_path / "absent.toml"), sqlite_url).open()
    with pytest.raises(MappingError, match="no mapping file"):
        SqlSeeder(SourceSpec(name="lis", seeder="sql"), sqlite_url).open()


def test_max_plus_one_and_sequence_keys(postgres_url, tmp_path):
    execute(postgres_url, "CREATE SEQUENCE dossier_seq START 900")
    execute(postgres_url, "CREATE TABLE dossier (num INTEGER PRIMARY KEY, rang INTEGER NOT NULL, nom VARCHAR(40))")
    execute(postgres_url, "INSERT INTO dossier VALUES (1, 41, 'REEL')")
    mapping = tmp_path / "dossier.toml"
    mapping.write_text(
        '[[table]]\nname = "dossier"\nkey = ["num"]\n[table.columns]\n'
        'num = { generate = "sequence", sequence = "dossier_seq" }\n'
        'rang = { generate = "max+1" }\nnom = { field = "last_name", transform = "upper" }\n',
        encoding="utf-8")
    s = create_seeder(source_spec(mapping), postgres_url)
    with s:
        first, second = s.plant(make_identity(1)), s.plant(make_identity(2))
        assert first.rows[0]["key"] == {"num": 900} and second.rows[0]["key"] == {"num": 901}
        assert (first.rows[0]["values"]["rang"], second.rows[0]["values"]["rang"]) == (42, 43)
        assert s.verify(make_identity(2), second).state is VerifyState.OK
        s.retire(first)
        s.retire(second)
    assert count_rows(postgres_url, "dossier") == 1
