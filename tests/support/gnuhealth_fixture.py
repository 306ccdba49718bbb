"""A GNU Health 4.4 database for the seeder tests: the real schema's tables, reference rows and real patients.

The schema is the real one (tests/fixtures/gnuhealth/schema.sql, dumped from a
GNU Health 4.4.1 site). The "real" patients are written the way a French
hospital's front desk writes them through the GNU Health client, with
conventions the seeder has to pick up: upper-case unaccented surnames,
Tryton's international phone format (a site with phonenumbers installed), the
NIR as a 'country_id' alternative ID, cities in capitals, party codes ending
with the institution name, most patients created by the reception user (id 2)
and most with a primary care doctor set in a later edit of the patient form.
The rows carry what GNU Health writes (tests/seeders/gnuhealth/
test_against_application.py checks the seeder against the application itself).
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
COMPANY_ID, COMPANY_PARTY_ID = 1, 99
DEPARTEMENTS = ("75", "69", "13", "33", "59", "974", "35")
DOCTOR_IDS = (1, 2, 3, 4, 5)
REAL_PATIENTS = 300
_UNEDITED = dict(write_uid=None, write_date=None)


def create_schema(url: str) -> None:
    ddl = "\n".join(line for line in SCHEMA.read_text(encoding="utf-8").splitlines() if not line.startswith("--"))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        cursor = conn.connection.cursor()  # DB-API cursor, no parameters: Tryton's format('%I', ...) stays as is
        for statement in ddl.split(";"):
            if statement.strip():
                cursor.execute(statement)
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
        conn.execute(t["ir_module"].insert(), [dict(id=1, name="health", state="activated")])
        conn.execute(t["currency_currency"].insert(), [dict(id=1, name="Euro", code="EUR", symbol="€",
                                                            rounding=0.01, digits=2, active=True)])
        conn.execute(t["party_party"].insert(), [dict(
            id=COMPANY_PARTY_ID, code=f"{uuid.UUID(int=99)}-{INSTITUTION}", name=INSTITUTION, ref="NP-CHV001AAA",
            is_institution=True, is_person=False, is_patient=False, active=True, create_target=True,
            create_uid=1, create_date=t0)])
        conn.execute(t["company_company"].insert(), [dict(id=COMPANY_ID, party=COMPANY_PARTY_ID, currency=1)])
        conn.execute(t["res_user"].insert(), [
            dict(id=0, name="Root", login="root", active=False, menu=1, company=None),
            dict(id=1, name="Administrator", login="admin", active=True, menu=1, company=COMPANY_ID),
            dict(id=RECEPTION_UID, name="Accueil", login="accueil", active=True, menu=1, company=COMPANY_ID)])
        conn.execute(t["country_country"].insert(), [
            dict(id=FRANCE_ID, name="France", code="FR", code3="FRA", code_numeric="250"),
            dict(id=BELGIUM_ID, name="Belgium", code="BE", code3="BEL", code_numeric="056")])
        conn.execute(t["country_subdivision"].insert(), [
            dict(id=n, country=FRANCE_ID, name=f"Département {d}", code=f"FR-{d}", type="metropolitan department")
            for n, d in enumerate(DEPARTEMENTS, start=1)])
        conn.execute(t["gnuhealth_federation_country_config"].insert(), [dict(id=1, country=FRANCE_ID)])
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
        rows = {name: [] for name in ("party_party", "party_party_lang", "gnuhealth_person_name",
                                      "party_contact_mechanism", "party_contact_mechanism_language",
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
    stamp = dict(create_uid=uid, create_date=created)  # one save of the party form: one create_date
    edited = dict(write_uid=uid, write_date=created + timedelta(days=30))
    lastname = strip_accents(ident.birth_name).upper()
    rows["party_party"].append(dict(
        id=pid, code=f"{uuid.UUID(int=10_000 + n)}-{INSTITUTION}", name=ident.first_name, lastname=lastname,
        ref=puid, federation_account="FRA" + puid, fed_country="FRA", activation_date=created.date() if n % 5 else None,
        unidentified=False, is_person=True, is_patient=True, is_healthprof=False, is_institution=False,
        is_insurance_company=False, is_pharmacy=False, dob=ident.birth_date, est_dob=False, create_target=True,
        gender="m" if ident.sex is Sex.MALE else "f", citizenship=FRANCE_ID if n % 20 else BELGIUM_ID,
        residence=FRANCE_ID, alternative_identification=n % 20 != 0, deceased=False, active=True,
        **stamp, **(edited if n % 3 == 0 else _UNEDITED)))
    rows["party_party_lang"].append(dict(party=pid, company=COMPANY_ID, **stamp))
    rows["gnuhealth_person_name"].append(dict(party=pid, use="official", family=lastname, given=ident.first_name,
                                              **stamp))
    if ident.married_name_used:
        rows["gnuhealth_person_name"].append(dict(party=pid, use="usual", family=ident.last_name.upper(),
                                                  given=ident.first_name, create_uid=uid,
                                                  create_date=created + timedelta(days=30)))
    contacts = []
    mobile = f"+336{20000000 + n:08d}"
    contacts.append(("mobile", formats(mobile)["international"], mobile))
    if n % 5 < 2:
        home = f"+332{99000000 + n:08d}"
        contacts.append(("phone", formats(home)["international"], home))
    if n % 5 < 3:
        contacts.append(("email", f"patient{n}@orange.fr", f"patient{n}@orange.fr"))
    for line, value, compact in contacts:
        cid = 10 * pid + len(rows["party_contact_mechanism"]) % 10
        rows["party_contact_mechanism"].append(dict(
            id=cid, party=pid, type=line, value=value, value_compact=compact, name="", active=True, emergency=False,
            write_uid=uid, write_date=created, **stamp))
        rows["party_contact_mechanism_language"].append(dict(contact_mechanism=cid, company=COMPANY_ID, **stamp))
    if n % 20:
        rows["gnuhealth_person_alternative_identification"].append(dict(
            name=pid, code=valid_nir(ident, n % 999 + 1), alternative_id_type="country_id", comments="",
            other_alternative_id_type="", **stamp))
    dep = DEPARTEMENTS[n % len(DEPARTEMENTS)]
    rows["party_address"].append(dict(
        party=pid, street=ident.address.line1 + (f"\n{ident.address.line2}" if ident.address.line2 else ""),
        postal_code=ident.address.postcode, city=ident.address.city.upper(), country=FRANCE_ID, name="",
        party_name="", relationship="", subdivision=DEPARTEMENTS.index(dep) + 1 if n % 7 else None, active=True,
        is_school=False, is_work=False, **stamp))
    blood = rnd.choice(["A+", "O+", "B-", "AB+", "O-"])
    doctor = DOCTOR_IDS[n % 5] if n % 4 else None
    rows["gnuhealth_patient"].append(dict(
        id=n, name=pid, primary_care_doctor=doctor, blood_type=blood[:-1] if n % 3 else None,
        rh=blood[-1] if n % 3 else None, active=True, crit_allergic=False, crit_cancer=False, crit_cardio=False,
        crit_cognitive=False, crit_dbt=False, crit_hbp=False, crit_immuno=False, crit_nutrition=False,
        crit_social=False, **stamp, **(edited if n % 3 or doctor else _UNEDITED)))
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
