"""OpenELIS test database: the fixture schema and 300 patients as OpenELIS wrote them.

The "real" patients follow one laboratory's habits, which the seeder must
pick up: names in capitals without accents, middle name left '' (not NULL),
phones "0612345678", country "FRANCE", an ST number "LAB" + 6 digits on
every patient, an empty commune part, and the audit trail of every insert.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from support.app_databases import load_pgdump
from canary.model import SourceSpec
from seeders.common.transforms import strip_accents
from support.sql_seeder_helpers import make_identity

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "openelis" / "schema.sql"
ST_TYPE, NATIONAL_TYPE, GUID_TYPE = 2, 1, 14
COMMUNE, VILLAGE = 2, 3
REF_PATIENT, REF_PERSON, REF_IDENTITY = 15, 16, 112
REAL_OFFSET = 200000


def source(**options: str) -> SourceSpec:
    return SourceSpec(name="elis", seeder="openelis", options=options)


def create_schema(url: str, path: Path = SCHEMA_FILE) -> None:
    load_pgdump(url, path)


def st_number(n: int) -> str:
    return f"LAB{4000 + n:06d}"


def populate_real(url: str, count: int = 300) -> None:
    engine = sa.create_engine(url)
    md = sa.MetaData(schema="clinlims")
    md.reflect(engine)
    t = {name.split(".")[-1]: table for name, table in md.tables.items()}
    rnd = random.Random(5)
    rows: dict[str, list[dict]] = {name: [] for name in ("person", "patient", "patient_identity", "person_address",
                                                         "history")}

    def audit(reference_table: int, reference_id: int, when: datetime) -> None:
        rows["history"].append(dict(id=len(rows["history"]) + 1, sys_user_id=1, reference_id=reference_id,
                                    reference_table=reference_table, timestamp=when, activity="I", changes=None))

    for n in range(1, count + 1):
        ident = make_identity(REAL_OFFSET + n)
        when = datetime(2023, 3, 1, 7, 30) + timedelta(hours=n * 5, microseconds=rnd.randrange(10**6))
        rows["person"].append(dict(
            id=n, last_name=strip_accents(ident.last_name).upper(), first_name=strip_accents(ident.first_name).upper(),
            middle_name="", street_address=ident.address.line1, city=strip_accents(ident.address.city).upper(),
            zip_code=ident.address.postcode, country="FRANCE", primary_phone=f"06{rnd.randrange(10**8):08d}",
            email=None, lastupdated=when))
        audit(REF_PERSON, n, when)
        rows["patient"].append(dict(
            id=n, person_id=n, gender=ident.sex.value, birth_date=datetime.combine(ident.birth_date, datetime.min.time()),
            entered_birth_date=ident.birth_date.strftime("%d/%m/%Y"), national_id=ident.nir, lastupdated=when))
        audit(REF_PATIENT, n, when)
        rows["patient_identity"].append(dict(id=n, identity_type_id=ST_TYPE, patient_id=n, identity_data=st_number(n),
                                             lastupdated=when))
        audit(REF_IDENTITY, n, when)
        rows["person_address"] += [dict(person_id=n, address_part_id=COMMUNE, type="T", value=None),
                                   dict(person_id=n, address_part_id=VILLAGE, type="T",
                                        value=strip_accents(ident.address.city).upper())]
    with engine.begin() as conn:
        for name in ("person", "patient", "patient_identity", "person_address", "history"):
            conn.execute(t[name].insert(), rows[name])
        # The application's sequences are past the rows it wrote.
        for sequence, value in (("person_seq", count), ("patient_seq", count), ("patient_identity_seq", count),
                                ("history_seq", len(rows["history"]))):
            conn.execute(sa.text(f"SELECT setval('clinlims.{sequence}', {value})"))
    engine.dispose()

