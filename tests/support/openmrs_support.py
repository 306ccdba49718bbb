"""OpenMRS test database: the fixture schema and 300 patients as OpenMRS wrote them.

The "real" patients follow one hospital's habits, which the seeder must pick
up: family names in capitals, phones written "06.12.34.56.78", identifiers
"OpenMRS Identification Number" (core Luhn) issued at "Hôpital Saint-Louis",
a few with their NIR as an "INS-NIR" identifier.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from support.app_databases import load_mysqldump
from canary.model import SourceSpec
from seeders.openmrs.checkdigits import CORE_LUHN_NAME, validator_for
from seeders.common.transforms import format_phone
from support.sql_seeder_helpers import make_identity

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openmrs"
SCHEMA = FIXTURES / "schema.sql"
IDGEN = FIXTURES / "idgen.sql"

LUHN_TYPE, OLD_TYPE, NIR_TYPE = 1, 2, 3
PHONE_TYPE, EMAIL_TYPE = 8, 9
HOSPITAL = 2
TABLES = ("users", "person", "person_name", "person_address", "person_attribute_type", "person_attribute",
          "location", "patient", "patient_identifier_type", "patient_identifier")

# The test identity numbers the real patients are drawn from (canaries use 0..).
REAL_OFFSET = 100000


def source(**options: str) -> SourceSpec:
    return SourceSpec(name="omrs", seeder="openmrs", options=options)


def create_schema(url: str, path: Path = SCHEMA) -> None:
    load_mysqldump(url, path)


def real_identifier(n: int) -> str:
    return validator_for(CORE_LUHN_NAME).valid_identifier(str(1000 + n))


def populate_real(url: str, count: int = 300) -> None:
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine, only=TABLES)
    t = md.tables
    rnd = random.Random(11)
    rows: dict[str, list[dict]] = {name: [] for name in ("person", "person_name", "person_address",
                                                         "person_attribute", "patient", "patient_identifier")}
    for n in range(1, count + 1):
        ident = make_identity(REAL_OFFSET + n)
        pid = n + 1  # person 1 is the admin user's
        created = datetime(2023, 1, 2, 8, 0) + timedelta(hours=n * 9, seconds=rnd.randrange(3600))
        audit = {"creator": 1, "date_created": created, "voided": 0}
        rows["person"].append(dict(person_id=pid, gender=ident.sex.value, birthdate=ident.birth_date,
                                   birthdate_estimated=0, dead=0, deathdate_estimated=0, uuid=str(uuid.uuid4()),
                                   **audit))
        rows["patient"].append(dict(patient_id=pid, allergy_status="Unknown", **audit))
        rows["person_name"].append(dict(person_id=pid, preferred=1, given_name=ident.first_name,
                                        family_name=ident.last_name.upper(), uuid=str(uuid.uuid4()), **audit))
        rows["person_address"].append(dict(person_id=pid, preferred=1, address1=ident.address.line1,
                                           city_village=ident.address.city, postal_code=ident.address.postcode,
                                           country="France", uuid=str(uuid.uuid4()), **audit))
        phone = f"+3367{rnd.randrange(10**7):07d}"
        rows["person_attribute"].append(dict(person_id=pid, value=format_phone(phone, "dotted"),
                                             person_attribute_type_id=PHONE_TYPE, uuid=str(uuid.uuid4()), **audit))
        rows["patient_identifier"].append(dict(
            patient_id=pid, identifier=real_identifier(n), identifier_type=LUHN_TYPE, preferred=1,
            location_id=HOSPITAL if n % 10 else 1, uuid=str(uuid.uuid4()), **audit))
        if n % 7 == 0:
            rows["patient_identifier"].append(dict(
                patient_id=pid, identifier=real_nir(n), identifier_type=NIR_TYPE, preferred=0,
                location_id=HOSPITAL, uuid=str(uuid.uuid4()), **audit))
    with engine.begin() as conn:
        for name in ("person", "patient", "person_name", "person_address", "person_attribute", "patient_identifier"):
            conn.execute(t[name].insert(), rows[name])
    engine.dispose()


def real_nir(n: int) -> str:
    """The NIR of real patient ``n`` (those with n % 7 == 0 have it recorded)."""
    return make_identity(REAL_OFFSET + n).nir
