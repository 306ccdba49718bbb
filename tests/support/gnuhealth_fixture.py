"""A GNU Health database for the seeder tests: the schema, reference rows and real patients.

The "real" patients are written the way a French hospital's front desk
writes them through the GNU Health client, with conventions the seeder has
to pick up: upper-case unaccented surnames, Tryton's international phone
format, the NIR as a 'country_id' alternative ID, cities in capitals, party
codes ending with the institution name, most patients created by the
reception user (id 2) and most with a primary care doctor.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from canary.model import Sex
from canary.identity.nir import make_nir
from canary.phones import formats
from seeders.common.transforms import strip_accents
from support.sql_seeder_helpers import make_identity

SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "gnuhealth" / "schema.sql"
INSTITUTION = "Centre Hospitalier de Vitré"
RECEPTION_UID = 2
FRANCE_ID, BELGIUM_ID = 1, 2
DEPARTEMENTS = ("75", "69", "13", "33", "59", "974", "35")
DOCTOR_IDS = (1, 2, 3, 4, 5)
REAL_PATIENTS = 300


def create_schema(url: str) -> None:
    ddl = "\n".join(line for line in SCHEMA.read_text(encoding="utf-8").splitlines() if not line.startswith("--"))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in ddl.split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)
    engine.dispose()


def valid_nir(identity, order: int) -> str:
    return make_nir(identity.sex, identity.birth_date, identity.birthplace, order)


def canary_identity(i: int, **changes):
    """make_identity(i) with a NIR whose key is right (the host's own NIRs are valid)."""
    ident = make_identity(i, **changes)
    return ident if "nir" in changes else make_identity(i, nir=valid_nir(ident, 900 + i % 99), **changes)


def populate(url: str, count: int = REAL_PATIENTS, *, reference_only: bool = False) -> None:
    """Users, countries, départements, five doctors and ``count`` real patients."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    t = md.tables
    rnd = random.Random(11)
    t0 = datetime(2019, 3, 1, 8, 0)
    with engine.begin() as conn:
        conn.execute(t["res_user"].insert(), [
            dict(id=0, name="Root", login="root", active=False),
            dict(id=1, name="Administrator", login="admin", active=True),
            dict(id=RECEPTION_UID, name="Accueil", login="accueil", active=True)])
        conn.execute(t["country_country"].insert(), [
            dict(id=FRANCE_ID, name="France", code="FR", code3="FRA", code_numeric="250"),
            dict(id=BELGIUM_ID, name="Belgium", code="BE", code3="BEL", code_numeric="056")])
        conn.execute(t["country_subdivision"].insert(), [
            dict(id=n, country=FRANCE_ID, name=f"Département {d}", code=f"FR-{d}", type="metropolitan department")
            for n, d in enumerate(DEPARTEMENTS, start=1)])
        if reference_only:
            _move_sequences(conn)
            return
        doctors = [dict(id=100 + n, code=str(uuid.UUID(int=n)) + "-" + INSTITUTION, name=f"Docteur{n}",
                        lastname=f"MEDECIN{n}", ref=f"DOC{n:03d}TOR", is_person=True, is_healthprof=True,
                        is_patient=False, active=True, gender="f", create_uid=1, create_date=t0)
                   for n in DOCTOR_IDS]
        conn.execute(t["party_party"].insert(), doctors)
        conn.execute(t["gnuhealth_healthprofessional"].insert(), [
            dict(id=n, name=100 + n, code=f"10{n:09d}", active=True, create_uid=1, create_date=t0)
            for n in DOCTOR_IDS])
        rows = {name: [] for name in ("party_party", "gnuhealth_person_name", "party_contact_mechanism",
                                      "gnuhealth_person_alternative_identification", "party_address",
                                      "gnuhealth_patient", "gnuhealth_appointment")}
        for n in range(1, count + 1):
            _real_patient(n, make_identity(200000 + n), rnd, t0 + timedelta(hours=7 * n), rows)
        for name, values in rows.items():
            conn.execute(t[name].insert(), values)
        _move_sequences(conn)
    engine.dispose()


def _real_patient(n: int, ident, rnd: random.Random, created: datetime, rows: dict) -> None:
    pid = 1000 + n
    puid = "".join(rnd.choice("ABCDEFGHJKLMNPRTUWXY") for _ in range(3)) + f"{n:03d}" + "XYZ"
    uid = RECEPTION_UID if n % 7 else 1
    stamp = dict(create_uid=uid, create_date=created)
    edited = dict(write_uid=uid, write_date=created + timedelta(days=30)) if n % 3 == 0 else {}
    lastname = strip_accents(ident.birth_name).upper()
    rows["party_party"].append(dict(
        id=pid, code=f"{uuid.UUID(int=10_000 + n)}-{INSTITUTION}", name=ident.first_name, lastname=lastname,
        ref=puid, federation_account="FRA" + puid, fed_country="FRA", activation_date=created.date() if n % 5 else None,
        unidentified=False, is_person=True, is_patient=True, is_healthprof=False, is_institution=False,
        is_insurance_company=False, is_pharmacy=False, dob=ident.birth_date, est_dob=False,
        gender="m" if ident.sex is Sex.MALE else "f", citizenship=FRANCE_ID if n % 20 else BELGIUM_ID,
        residence=FRANCE_ID, alternative_identification=n % 20 != 0, deceased=False, active=True,
        **stamp, **edited))
    rows["gnuhealth_person_name"].append(dict(party=pid, use="official", family=lastname, given=ident.first_name,
                                              **stamp))
    if ident.married_name_used:
        rows["gnuhealth_person_name"].append(dict(party=pid, use="usual", family=ident.last_name.upper(),
                                                  given=ident.first_name, **stamp))
    mobile = f"+336{20000000 + n:08d}"
    rows["party_contact_mechanism"].append(dict(party=pid, type="mobile", value=formats(mobile)["international"],
                                                value_compact=mobile, active=True, **stamp))
    if n % 5 < 2:
        home = f"+332{99000000 + n:08d}"
        rows["party_contact_mechanism"].append(dict(party=pid, type="phone", value=formats(home)["international"],
                                                    value_compact=home, active=True, **stamp))
    if n % 5 < 3:
        rows["party_contact_mechanism"].append(dict(party=pid, type="email", value=f"patient{n}@orange.fr",
                                                    value_compact=f"patient{n}@orange.fr", active=True, **stamp))
    if n % 20:
        rows["gnuhealth_person_alternative_identification"].append(dict(
            name=pid, code=valid_nir(ident, n % 999 + 1), alternative_id_type="country_id", **stamp))
    dep = DEPARTEMENTS[n % len(DEPARTEMENTS)]
    rows["party_address"].append(dict(
        party=pid, street=ident.address.line1 + (f"\n{ident.address.line2}" if ident.address.line2 else ""),
        zip=ident.address.postcode, city=ident.address.city.upper(), country=FRANCE_ID,
        subdivision=DEPARTEMENTS.index(dep) + 1 if n % 7 else None, active=True, is_school=False, is_work=False,
        **stamp))
    blood = rnd.choice(["A+", "O+", "B-", "AB+", "O-"])
    rows["gnuhealth_patient"].append(dict(
        id=n, name=pid, primary_care_doctor=DOCTOR_IDS[n % 5] if n % 4 else None,
        blood_type=blood[:-1] if n % 3 else None, rh=blood[-1] if n % 3 else None, active=True,
        crit_allergic=False, crit_cancer=False, crit_cardio=False, crit_dbt=False, crit_hbp=False,
        smoking=False, alcohol=False, create_uid=uid, create_date=created + timedelta(seconds=45)))
    if n % 10 == 0:
        rows["gnuhealth_appointment"].append(dict(name=f"APP{n:05d}", patient=n, healthprof=DOCTOR_IDS[0],
                                                  appointment_date=created + timedelta(days=3), state="done",
                                                  create_uid=uid, create_date=created))


def _move_sequences(conn: sa.Connection) -> None:
    """Explicit ids were inserted: move each table's id sequence past them, as Tryton's would be."""
    tables = conn.execute(sa.text(
        "SELECT table_name FROM information_schema.columns WHERE column_name = 'id' "
        "AND column_default LIKE 'nextval%' AND table_schema = 'public'")).scalars().all()
    for table in tables:
        conn.execute(sa.text(f"SELECT setval('{table}_id_seq', GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))"))


def execute(url: str, sql: str, **params) -> list:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        result = conn.execute(sa.text(sql), params)
        rows = result.all() if result.returns_rows else []
    engine.dispose()
    return rows
