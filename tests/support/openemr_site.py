"""A realistic OpenEMR site on OpenEMR's real schema (MariaDB), for the concealment tests and bench.

Its own population generator, written apart from canary/identity on purpose:
the separability audit must be run against patients that were *not* made by
the code that makes canaries. What it imitates is a French general practice
after five years of OpenEMR, rows as the application writes them:

- registrations on working days at office hours, whole seconds, more of them
  recently, by three front-desk accounts; half of the records edited later
  (``date``/``last_updated``/``updated_by``); the new-patient form's side
  effects: '' in every posted DEM text field, a blank ``employer_data`` row, a
  ``history_data`` row, three blank ``insurance_data`` rows, the audit
  ``log`` rows of each insert (with their ``log_comment_encrypt`` checksums)
  and the ``view`` row of setpid; ``dupscore`` as updateDupScore computes it;
- a catchment (Lyon and around), phones spread over the numbering plan
  (mobiles for most, landlines for many older patients), emails at the
  common providers (some missing, a few family domains);
- clinical activity: an encounter on the registration day for 70 % (the
  chart opened: a ``view`` log row; vitals for 80 %; problems, medications;
  a follow-up booked for 40 %), then visits every few months while the
  patient stays with the practice, allergies entered minutes after
  registering; portal accounts for 18 %, created days later, with their
  ``patient-access`` log row.

Rows are generated with local numbers and loaded in time order
(``SiteLoader.load_until``): pids, ids and encounter numbers are taken from
the database when each chunk is inserted, so canaries planted between two
chunks get their numbers among the site's, as in a live OpenEMR.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from support.app_seeder_helpers import create_statements, load_sql

# .ci/run exports CANARY_REAL_SCHEMAS; otherwise look beside the checkout (or the worktree's).
REAL_SCHEMA = Path(os.environ.get("CANARY_REAL_SCHEMAS") or next(
    (p / "shared" / "schemas" for p in Path(__file__).resolve().parents[3:5] if (p / "shared").is_dir()),
    Path("shared") / "schemas")) / "openemr-database.sql"
TABLES = ("uuid_registry", "patient_data", "employer_data", "history_data", "insurance_data", "lists", "lists_touch",
          "patient_access_onsite", "log", "log_comment_encrypt", "users", "list_options", "facility", "version",
          "globals", "layout_options", "form_encounter", "forms", "form_vitals", "openemr_postcalendar_events",
          "sequences", "documents", "pnotes", "billing", "prescriptions")
INSTALLED_VERSION = ("UPDATE version SET v_major = 8, v_minor = 2, v_patch = 0, v_realpatch = 0, v_tag = '', "
                     "v_database = 541, v_acl = 13")
PARIS = ZoneInfo("Europe/Paris")
DATABASE_ZONE = ZoneInfo("UTC")  # the test MariaDB's time zone (SYSTEM, UTC)
_LISTS = ("'allergy_issue_list'", "'apptstat'", "'marital'", "'language'", "'sex'", "'pricelevel'")

SURNAMES = ["MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU", "LAURENT",
            "SIMON", "MICHEL", "LEFEBVRE", "LEROY", "ROUX", "DAVID", "BERTRAND", "MOREL", "FOURNIER", "GIRARD",
            "BONNET", "DUPONT", "LAMBERT", "FONTAINE", "ROUSSEAU", "VINCENT", "MULLER", "LEFEVRE", "FAURE",
            "ANDRE", "MERCIER", "BLANC", "GUERIN", "BOYER", "GARNIER", "CHEVALIER", "FRANCOIS", "LEGRAND",
            "GAUTHIER", "GARCIA", "PERRIN", "ROBIN", "CLEMENT", "MORIN", "NICOLAS", "HENRY", "ROUSSEL", "MATHIEU",
            "GAUTIER", "MASSON", "MARCHAND", "DUVAL", "DENIS", "DUMONT", "MARIE", "LEMAIRE", "NOEL", "MEYER",
            "DUFOUR", "MEUNIER", "BRUN", "BLANCHARD", "GIRAUD", "JOLY", "RIVIERE", "LUCAS", "BRUNET", "GAILLARD",
            "BARBIER", "ARNAUD", "MARTINEZ", "GERARD", "ROCHE", "RENARD", "SCHMITT", "ROY", "LEROUX", "COLIN",
            "VIDAL", "CARON", "PICARD", "ROGER", "FABRE", "AUBERT", "LEMOINE", "RENAUD", "DUMAS", "LACROIX",
            "OLIVIER", "PHILIPPE", "BOURGEOIS", "PIERRE", "BENOIT", "REY", "LECLERC", "PAYET", "ROLLAND",
            "NGUYEN", "DA SILVA", "BENALI", "HADDAD", "DIALLO", "PEREIRA", "FERREIRA", "LOPEZ", "SANCHEZ"]
WOMEN = ["Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Françoise", "Monique", "Sandrine", "Christine",
         "Valérie", "Emma", "Léa", "Chloé", "Camille", "Manon", "Jeanne", "Anne", "Louise", "Céline", "Aurélie",
         "Julie", "Sophie", "Martine", "Nicole", "Jacqueline", "Inès", "Zoé", "Alice", "Lina", "Sarah", "Laura",
         "Émilie", "Claire", "Hélène", "Brigitte", "Chantal", "Patricia", "Véronique", "Agnès", "Mathilde"]
MEN = ["Jean", "Pierre", "Michel", "Philippe", "Alain", "Nicolas", "Christophe", "Patrick", "Daniel", "Bernard",
       "Éric", "Thomas", "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Jules", "Paul", "Julien", "Sébastien",
       "Laurent", "Stéphane", "Yann", "Gérard", "Noah", "Théo", "Adam", "Raphaël", "Mohamed", "Antoine",
       "Maxime", "Olivier", "Frédéric", "David", "François", "Jacques", "Henri", "Vincent", "Guillaume"]
# The practice's catchment: Lyon's east side and the suburbs around (postcode, city, weight).
CATCHMENT = [("69003", "LYON", 22), ("69007", "LYON", 14), ("69008", "LYON", 16), ("69006", "LYON", 6),
             ("69100", "VILLEURBANNE", 18), ("69500", "BRON", 9), ("69200", "VENISSIEUX", 6),
             ("69800", "SAINT-PRIEST", 4), ("69120", "VAULX-EN-VELIN", 4), ("69150", "DECINES-CHARPIEU", 3),
             ("69330", "MEYZIEU", 2), ("69680", "CHASSIEU", 2), ("69009", "LYON", 1), ("38080", "L'ISLE-D'ABEAU", 1)]
STREETS = ["rue Paul Bert", "cours Gambetta", "avenue Félix Faure", "rue de la Villette", "boulevard des Belges",
           "rue Garibaldi", "avenue Jean Jaurès", "rue Saint-Maximin", "cours Émile Zola", "rue Francis de Pressensé",
           "avenue Roger Salengro", "rue du Dauphiné", "route de Genas", "rue Marietton", "chemin des Pins",
           "allée des Cerisiers", "rue Anatole France", "avenue Franklin Roosevelt", "rue Victor Hugo"]
PROVIDERS = [("gmail.com", 40), ("orange.fr", 14), ("hotmail.fr", 10), ("yahoo.fr", 6), ("free.fr", 6),
             ("wanadoo.fr", 5), ("laposte.net", 4), ("sfr.fr", 3), ("outlook.fr", 4), ("icloud.com", 3),
             ("hotmail.com", 3), ("bbox.fr", 2), ("live.fr", 2), ("neuf.fr", 1)]
# users.id, username, authorized (clinicians sign encounters), weight
CLINICIANS = [(2, "cmoreau", 40), (3, "jlefort", 30), (4, "abenali", 20), (5, "mrey", 10)]
DESK = [(6, "accueil1", 55), (7, "accueil2", 35), (8, "secretariat", 10)]
PROBLEMS = (("Hypertension", "ICD10:I10"), ("Type 2 diabetes", "ICD10:E11.9"), ("Asthma", "ICD10:J45.909"),
            ("Hypothyroidism", "ICD10:E03.9"), ("Low back pain", "ICD10:M54.5"), ("Depression", "ICD10:F32.9"),
            ("Hyperlipidemia", "ICD10:E78.5"), ("Osteoarthritis of knee", "ICD10:M17.9"))
MEDICATIONS = ("Amlodipine 5 mg", "Metformin 850 mg", "Levothyrox 75 µg", "Paracetamol 1 g", "Ventoline",
               "Atorvastatine 20 mg", "Ramipril 5 mg", "Sertraline 50 mg")
ALLERGIES = ("penicillin", "sulfa", "iodine", "codeine", "latex", "aspirin")
REASONS = ("Consultation", "Renouvellement", "Bilan", "Certificat", "Fièvre", "Douleur", "Suivi")


# Most French surnames are rare: beyond the common ones, names built from syllables, so that two patients
# share a surname (and its SOUNDEX, which updateDupScore weighs) as seldom as in a real practice.
_HEADS = ("BER", "MAR", "DU", "LE ", "FON", "GAR", "ROU", "VIL", "CHA", "BOU", "PEL", "TAR", "GUIL", "MOU",
          "SAL", "COR", "BAR", "DES", "LAF", "JOU", "KER", "POI", "QUE", "HU", "ZAM")
_MIDS = ("", "", "", "AN", "ON", "ER", "IL", "OU", "AR", "EL")
_TAILS = ("NARD", "TIN", "MONT", "ROUX", "LIN", "CHET", "BERT", "GEON", "LOT", "RAND", "VAL", "LEC", "DEC",
          "QUIN", "PIN", "TEL", "GNY", "VET", "ZEL", "HAUD", "NIER", "RIOT", "MAS", "SSON")


def _surname(rng: random.Random) -> str:
    if rng.random() < 0.35:
        return rng.choice(SURNAMES)
    return (rng.choice(_HEADS) + rng.choice(_MIDS) + rng.choice(_TAILS)).replace("  ", " ")


def _weighted(rng: random.Random, pairs: list[tuple]) -> tuple:
    return rng.choices(pairs, weights=[p[-1] for p in pairs])[0]


def _office_moment(rng: random.Random, day: date) -> datetime:
    """A moment of the practice's office hours (Paris time), as the database's clock stores it (UTC here:
    the test server's zone, which the seeder follows too)."""
    seconds = int(rng.triangular(8 * 3600, 18.8 * 3600, 10 * 3600))
    local = datetime.combine(day, time()) + timedelta(seconds=seconds)
    return local.replace(tzinfo=PARIS).astimezone(DATABASE_ZONE).replace(tzinfo=None)


def _working_day(rng: random.Random, start: date, end: date) -> date:
    """A weekday between start and end, more often recent (a growing practice)."""
    span = (end - start).days
    while True:
        day = start + timedelta(days=int(span * math.sqrt(rng.random())))
        if day.weekday() < 5:
            return day


def _next_working_day(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _comb(moment: datetime, rng: random.Random) -> bytes:
    """A timestamp-first COMB uuid (as UuidRegistry::createUuid makes them)."""
    ticks = int(moment.timestamp() * 100_000)
    rand = bytearray(rng.randbytes(10))
    rand[0] = (rand[0] & 0x0F) | 0x40
    rand[2] = (rand[2] & 0x3F) | 0x80
    return (ticks & 0xFFFF_FFFF_FFFF).to_bytes(6, "big") + bytes(rand)


def _mobile(rng: random.Random) -> str:
    digits = "0" + rng.choice("67") + "".join(str(rng.randrange(10)) for _ in range(8))
    return " ".join(digits[i:i + 2] for i in range(0, 10, 2))


def _landline(rng: random.Random) -> str:
    digits = "04" + rng.choice(["72", "78", "37", "26", "81"]) + "".join(str(rng.randrange(10)) for _ in range(6))
    return " ".join(digits[i:i + 2] for i in range(0, 10, 2))


def _slug(text: str) -> str:
    table = str.maketrans("éèêëàâîïôöûüçÉÈ' ", "eeeeaaiioouucEE--")
    return text.translate(table).lower()


@dataclass
class Event:
    """One row of the site at the moment the application wrote it, with local numbers."""

    at: datetime
    table: str
    values: dict[str, Any]


@dataclass
class Site:
    now: datetime
    events: list[Event] = field(default_factory=list)
    patients: int = 0

    def add(self, at: datetime, table: str, **values: Any) -> dict[str, Any]:
        self.events.append(Event(at, table, values))
        return values


def create_schema(url: str) -> None:
    """OpenEMR's own CREATE TABLE statements (sql/database.sql) for the tables the site uses, stock rows."""
    load_sql(url, create_statements(
        REAL_SCHEMA, TABLES,
        keep_insert=lambda table, sql: table in ("facility", "version", "sequences") or (
            table == "list_options" and any(x in sql for x in _LISTS)) or (
            table == "layout_options" and "VALUES ('DEM'" in sql)))
    load_sql(url, INSTALLED_VERSION)
    users = ", ".join(f"({i}, '{u}', '{u.capitalize()}', 'Dr', 1, 3, 1)" for i, u, _ in CLINICIANS)
    desk = ", ".join(f"({i}, '{u}', '{u.capitalize()}', '', 0, 3, 1)" for i, u, _ in DESK)
    load_sql(url, "INSERT INTO users (id, username, fname, lname, authorized, facility_id, active) VALUES "
                  f"(1, 'admin', 'Administrator', 'Administrator', 1, 3, 1), {users}, {desk};"
                  "UPDATE facility SET name = 'Cabinet médical des Brotteaux', country_code = 'FR' WHERE id = 3;"
                  "INSERT IGNORE INTO list_options (list_id, option_id, title, seq) VALUES "
                  + ", ".join(f"('allergy_issue_list', '{o}', '{o}', {10 * i})" for i, o in enumerate(ALLERGIES))
                  + ";")


def posted_text_columns(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(
                "SELECT l.field_id FROM layout_options l JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = "
                "DATABASE() AND c.TABLE_NAME = 'patient_data' AND c.COLUMN_NAME = l.field_id WHERE l.form_id = 'DEM' "
                "AND l.uor > 0 AND c.DATA_TYPE IN ('varchar', 'text', 'tinytext', 'mediumtext', 'longtext', 'char')"
            )).scalars())
    finally:
        engine.dispose()


def make_site(now: datetime, count: int = 3000, *, seed: int = 1, years: int = 5,
              posted: list[str] | None = None) -> Site:
    """The rows of ``count`` patients registered over ``years`` before ``now`` (naive local time)."""
    rng = random.Random(seed)
    site = Site(now=now.replace(microsecond=0), patients=count)
    start = (now - timedelta(days=365 * years)).date()
    days = sorted(_working_day(rng, start, (now - timedelta(days=1)).date()) for _ in range(count))
    moments = sorted(_office_moment(rng, day) for day in days)
    families = [f"{_slug(rng.choice(SURNAMES))}-famille.fr" for _ in range(count // 60 + 1)]
    blank = dict.fromkeys(posted or (), "")
    encounter = 0
    desk_last = {u: 0 for _, u, _ in DESK}
    for pid, registered in enumerate(moments, 1):
        female = rng.random() < 0.53
        first = rng.choice(WOMEN if female else MEN)
        surname = _surname(rng)
        age = min(100, max(0, int(rng.gauss(44, 22))))
        born = date(now.year - age, 1, 1) + timedelta(days=rng.randrange(365))
        postcode, city, _w = _weighted(rng, CATCHMENT)
        desk_id, desk_user, _w = _weighted(rng, DESK)
        old = age >= 65
        cell = _mobile(rng) if rng.random() < (0.6 if old else 0.93) else ""
        home = _landline(rng) if rng.random() < (0.6 if old else 0.15) else ""
        email = ""
        if rng.random() < (0.4 if old else 0.8):
            domain = rng.choice(families) if rng.random() < 0.04 else _weighted(rng, PROVIDERS)[0]
            email = f"{_slug(first)}.{_slug(surname).replace(' ', '')}{rng.randrange(100) if rng.random() < 0.5 else ''}@{domain}"
        edited = registered + timedelta(days=rng.expovariate(1 / 90)) if rng.random() < 0.5 else registered
        edited = min(edited.replace(microsecond=0), site.now)
        provider = _weighted(rng, CLINICIANS)[0] if rng.random() < 0.9 else None
        nir = f"{2 if female else 1}{born:%y%m}{rng.choice(['69', '69', '69', '38', '01', '75', '99'])}" \
              f"{rng.randrange(1, 400):03d}{rng.randrange(1, 999):03d}"
        key = 97 - int(nir) % 97
        patient_uuid = _comb(registered, rng)
        site.add(registered, "uuid_registry", uuid=patient_uuid, table_name="patient_data", table_id="id",
                 table_vertical="", couchdb="", document_drive=0, mapped=0, created=registered)
        portal = rng.random() < 0.18
        birth_name = _surname(rng) if female and age > 25 and rng.random() < 0.45 else ""
        site.add(registered, "patient_data", **{
            **blank, "id": pid, "uuid": patient_uuid, "pid": pid, "pubpid": str(pid),
            "title": (rng.choice(["Mrs.", "Mrs.", "Ms."]) if female else "Mr.") if rng.random() < 0.8 else "",
            "language": _weighted(rng, [("french", 92), ("english", 3), ("arabic", 2), ("portuguese", 2),
                                        ("", 1)])[0],
            "fname": first, "lname": surname,
            "mname": rng.choice(WOMEN if female else MEN) if rng.random() < 0.25 else "",
            "DOB": born, "street": f"{rng.randrange(1, 180)} {rng.choice(STREETS)}", "postal_code": postcode,
            "city": city, "state": "", "country_code": "FR" if rng.random() < 0.97 else "",
            "ss": f"{nir}{key:02d}" if rng.random() < 0.85 else "", "phone_home": home, "phone_cell": cell,
            "email": email, "sex": "Female" if female else "Male", "providerID": provider,
            "status": _weighted(rng, [("", 40), ("married", 30), ("single", 20), ("divorced", 5),
                                      ("widowed", 5)])[0],
            "hipaa_mail": rng.choice(["YES", "YES", "NO", ""]), "hipaa_voice": rng.choice(["YES", "YES", "NO", ""]),
            "hipaa_notice": rng.choice(["YES", "YES", ""]), "hipaa_allowsms": rng.choice(["YES", "NO", "NO"]),
            "hipaa_allowemail": rng.choice(["YES", "NO", "NO"]) if email else "NO",
            "occupation": rng.choice(["", "", "", "Retraité", "Enseignant", "Employé", "Étudiant"]),
            "birth_lname": birth_name, "birth_fname": first if birth_name else "",
            "regdate": registered, "date": edited, "last_updated": edited, "created_by": desk_id,
            "updated_by": desk_id if edited == registered else _weighted(rng, DESK + CLINICIANS)[0],
            "pricelevel": "standard", "allow_patient_portal": "YES" if portal else rng.choice(["", "", "", "NO"]),
            "dupscore": 0,
        })
        # The new-patient form's side effects, in its order, each logged (EventAuditLogger) by the desk.
        previous = desk_last[desk_user]
        _log(site, registered, desk_user, "patient-record-insert", "Patient Demographics",
             f"INSERT INTO patient_data SET `title` = ? ... ('{surname}',)", previous, rng)
        _log(site, registered, desk_user, "view", "view", "", pid, rng)
        desk_last[desk_user] = pid
        site.add(registered, "employer_data", pid=pid, date=registered, name="", street="", street_line_2="",
                 postal_code="", city="", state="", country="", created_by=desk_id)
        _log(site, registered, desk_user, "patient-record-insert", "Patient Demographics",
             f"INSERT INTO employer_data SET pid = '{pid}', date = NOW()", pid, rng)
        history_uuid = _comb(registered, rng)
        site.add(registered, "uuid_registry", uuid=history_uuid, table_name="history_data", table_id="id",
                 table_vertical="", couchdb="", document_drive=0, mapped=0, created=registered)
        site.add(registered, "history_data", uuid=history_uuid, pid=pid, date=registered)
        _log(site, registered, desk_user, "patient-record-insert", "Social and Family History",
             " INSERT INTO history_data SET `pid` = ? ", pid, rng)
        for level in ("primary", "secondary", "tertiary"):
            site.add(registered, "insurance_data", **_blank_insurance(level, pid))
            _log(site, registered, desk_user, "patient-record-insert", "Patient Insurance",
                 "INSERT INTO `insurance_data` SET `type` = ?", pid, rng)
        if rng.random() < 0.15:
            entered = registered + timedelta(seconds=rng.randrange(60, 900))
            for n, allergy in enumerate(rng.sample(ALLERGIES, 1 + (rng.random() < 0.2))):
                _issue(site, rng, entered, pid, "allergy", allergy, "", desk_user)
                if n == 0:
                    site.add(entered, "lists_touch", pid=pid, type="allergy", date=entered)
        if portal:
            created = registered + timedelta(days=rng.expovariate(1 / 25), seconds=rng.randrange(3600))
            if created.weekday() >= 5 or created > site.now:
                created = min(site.now, datetime.combine(_next_working_day(created.date()), time(9)) +
                              timedelta(seconds=rng.randrange(8 * 3600)))
            site.add(created, "patient_access_onsite", pid=pid,
                     portal_username=f"{first}{surname}", portal_login_username=email,
                     portal_pwd="$2y$10$" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789./")
                                                   for _ in range(53)),
                     portal_pwd_status=rng.choice([0, 1, 1]), date_created=created)
            _log(site, created, desk_user, "patient-access", "patient-access", "updated credentials", pid, rng)
        encounter = _visits(site, rng, pid, registered, female, encounter)
    site.events.sort(key=lambda e: e.at)
    return site


def _blank_insurance(level: str, pid: int) -> dict[str, Any]:
    text = ("provider", "policy_number", "group_number", "plan_name", "subscriber_lname", "subscriber_mname",
            "subscriber_fname", "subscriber_relationship", "subscriber_ss", "subscriber_street",
            "subscriber_postal_code", "subscriber_city", "subscriber_state", "subscriber_country",
            "subscriber_phone", "subscriber_employer", "subscriber_employer_city", "subscriber_employer_street",
            "subscriber_employer_postal_code", "subscriber_employer_state", "subscriber_employer_country",
            "copay", "subscriber_sex")
    return {**dict.fromkeys(text, ""), "type": level, "pid": pid, "subscriber_DOB": None, "date": None,
            "accept_assignment": "TRUE", "policy_type": "", "date_end": None}


def _log(site: Site, at: datetime, user: str, event: str, category: str, comment: str, patient_id: int,
         rng: random.Random) -> None:
    comments = base64.b64encode(comment.encode()).decode()
    log = site.add(at, "log", date=at, event=event, category=category, user=user, groupname="Default",
                   comments=comments, user_notes="", patient_id=patient_id, success=1, crt_user="",
                   log_from="open-emr")
    site.add(at, "log_comment_encrypt", log_id=log, encrypt="No", checksum="", checksum_api="", version=4)


def _issue(site: Site, rng: random.Random, at: datetime, pid: int, kind: str, title: str, code: str,
           user: str) -> None:
    raw = _comb(at, rng)
    site.add(at, "uuid_registry", uuid=raw, table_name="lists", table_id="id", table_vertical="", couchdb="",
             document_drive=0, mapped=0, created=at)
    site.add(at, "lists", uuid=raw, date=at, modifydate=at, type=kind, title=title, diagnosis=code,
             begdate=datetime.combine(at.date(), time()) if kind != "allergy" else None, pid=pid, activity=1,
             comments="", occurrence=0, classification=0, referredby="", user=user, groupname="Default", outcome=0,
             destination="", reaction="", verification="confirmed" if kind == "allergy" else "",
             severity_al="" if kind == "allergy" else None,
             list_option_id=title if kind == "allergy" else None)


def _visits(site: Site, rng: random.Random, pid: int, registered: datetime, female: bool, number: int) -> int:
    """The registration-day visit (70 %) and the later ones while the patient stays with the practice."""
    leaves = registered + timedelta(days=rng.expovariate(1 / 900))
    seen = registered + timedelta(minutes=rng.randrange(10, 150)) if rng.random() < 0.7 else None
    first = True
    while True:
        if seen is not None:
            if seen > site.now - timedelta(minutes=30) or seen > leaves:
                break
            number += 1 + (rng.random() < 0.2)
            _encounter(site, rng, pid, seen, female, number, first)
        first = False
        gap = timedelta(days=7 + rng.expovariate(1 / 110))
        day = _next_working_day(((seen or registered) + gap).date())  # (a UTC date: close enough for a day)
        seen = _office_moment(rng, day)
    return number


def _encounter(site: Site, rng: random.Random, pid: int, seen: datetime, female: bool, number: int,
               first: bool) -> None:
    clinician_id, clinician, _w = _weighted(rng, CLINICIANS)
    _log(site, seen, clinician, "view", "view", "", pid, rng)
    day = datetime.combine(seen.date(), time())
    raw = _comb(seen, rng)
    site.add(seen, "uuid_registry", uuid=raw, table_name="form_encounter", table_id="id", table_vertical="",
             couchdb="", document_drive=0, mapped=0, created=seen)
    enc = site.add(seen, "form_encounter", uuid=raw, date=day, reason=rng.choice(REASONS),
                   facility="Cabinet médical des Brotteaux", facility_id=3, pid=pid, encounter=number,
                   pc_catid=rng.choice((5, 9, 9)), provider_id=clinician_id, billing_facility=3, sensitivity="normal",
                   class_code="AMB", pos_code=11, billing_note="", invoice_refno="", external_id=None,
                   last_update=seen)
    site.add(seen, "forms", date=day, encounter=number, form_name="New Patient Encounter", form_id=enc, pid=pid,
             user=clinician, groupname="Default", authorized=1, deleted=0, formdir="newpatient")
    if rng.random() < 0.8:
        height = rng.gauss(64 if female else 69, 3)
        weight = rng.gauss(150 if female else 180, 25)
        measured = seen + timedelta(minutes=rng.randrange(2, 12))
        vitals = site.add(measured, "form_vitals", uuid=None, date=measured, pid=pid, user=clinician,
                          groupname="Default", authorized=1, activity=1, bps=str(rng.randrange(105, 160)),
                          bpd=str(rng.randrange(60, 95)), weight=round(weight, 2), height=round(height, 2),
                          temperature=round(rng.gauss(98.2, 0.5), 1), temp_method="Oral",
                          pulse=rng.randrange(55, 100), respiration=rng.randrange(12, 20), note="",
                          BMI=round(703 * weight / height ** 2, 1), BMI_status="", waist_circ=0, head_circ=0,
                          oxygen_saturation=rng.randrange(94, 100), last_updated=measured)
        site.add(measured, "forms", date=measured, encounter=number, form_name="Vitals", form_id=vitals, pid=pid,
                 user=clinician, groupname="Default", authorized=1, deleted=0, formdir="vitals")
    for kind, chance in (("medical_problem", 0.3 if first else 0.08), ("medication", 0.25 if first else 0.1)):
        if rng.random() < chance:
            title, code = rng.choice(PROBLEMS) if kind == "medical_problem" else (rng.choice(MEDICATIONS), "")
            _issue(site, rng, seen + timedelta(minutes=rng.randrange(5, 30)), pid, kind, title, code, clinician)
    if rng.random() < (0.4 if first else 0.25):
        booked = seen + timedelta(minutes=rng.randrange(20, 60))
        on = _next_working_day(booked.date() + timedelta(days=rng.randrange(7, 60)))
        start = rng.choice(("09:00:00", "09:30:00", "10:15:00", "14:00:00", "16:45:00"))
        raw = _comb(booked, rng)
        site.add(booked, "uuid_registry", uuid=raw, table_name="openemr_postcalendar_events", table_id="pc_eid",
                 table_vertical="", couchdb="", document_drive=0, mapped=0, created=booked)
        site.add(booked, "openemr_postcalendar_events", uuid=raw, pc_catid=9, pc_multiple=0, pc_aid=str(clinician_id),
                 pc_pid=pid, pc_title="Established Patient", pc_time=booked, pc_hometext="", pc_informant="6",
                 pc_eventDate=on, pc_endDate=on, pc_duration=900, pc_recurrtype=0,
                 pc_recurrspec='a:5:{s:17:"event_repeat_freq";s:1:"0";}', pc_startTime=start, pc_endTime=start,
                 pc_alldayevent=0, pc_apptstatus=rng.choice(("-", "-", ">", "x", "?")) if on < site.now.date() else "-",
                 pc_eventstatus=1, pc_sharing=1, pc_facility=3, pc_billing_location=3, pc_room="",
                 pc_sendalertsms="NO", pc_sendalertemail="NO")


# -- loading, in time order --------------------------------------------------

_LOGGED = ("date", "event", "category", "user", "groupname", "comments", "user_notes", "patient_id", "success",
           "crt_user", "log_from")
_ID = {"patient_data": "id", "employer_data": "id", "history_data": "id", "insurance_data": "id", "lists": "id",
       "patient_access_onsite": "id", "log": "id", "log_comment_encrypt": "id", "form_encounter": "id",
       "forms": "id", "form_vitals": "id", "openemr_postcalendar_events": "pc_eid"}


class SiteLoader:
    """Inserts the site's rows up to a moment, taking pids, ids and encounter numbers as the database has them."""

    def __init__(self, url: str, site: Site) -> None:
        self.url, self.site = url, site
        self.engine = sa.create_engine(url)
        self.md = sa.MetaData()
        self.md.reflect(self.engine, only=list(TABLES))
        self.done = 0
        self.pids: dict[int, int] = {}  # local pid -> pid in the database
        self.patient_ids: dict[int, int] = {}  # pid in the database -> patient_data.id
        self.numbers: dict[int, int] = {}  # local encounter number -> the database's
        self.soundex: dict[str, str] = {}
        self.buckets: dict[tuple, list[dict[str, Any]]] = defaultdict(list)  # earlier patients, for dupscore
        self.sexes: set[str] = set()

    def close(self) -> None:
        self.engine.dispose()

    def load_until(self, moment: datetime | None) -> int:
        """Insert every row dated before ``moment`` (naive local time; None: all); the rows inserted."""
        events = self.site.events
        end = len(events) if moment is None else next(
            (i for i in range(self.done, len(events)) if events[i].at >= moment), len(events))
        chunk = events[self.done:end]
        self.done = end
        if not chunk:
            return 0
        with self.engine.begin() as conn:
            tops = {t: conn.execute(sa.text(f"SELECT COALESCE(MAX({c}), 0) FROM {t}")).scalar() for t, c in _ID.items()}
            top_pid = conn.execute(sa.text("SELECT COALESCE(MAX(pid), 0) FROM patient_data")).scalar()
            sequence = conn.execute(sa.text("SELECT id FROM sequences")).scalar() or 0
            ids: dict[int, int] = {}  # id() of a local row -> its id in the database
            logged: dict[int, dict[str, Any]] = {}
            batches: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for event in chunk:
                row = dict(event.values)
                table = event.table
                if table == "patient_data":
                    top_pid += 1
                    self.pids[row["pid"]] = top_pid
                    row["dupscore"] = self._dupscore(conn, row)
                if table in _ID:
                    tops[table] += 1
                    row[_ID[table]] = tops[table]
                    ids[id(event.values)] = tops[table]
                for column in ("pid", "patient_id"):
                    if column in row and row[column]:
                        row[column] = self.pids.get(row[column], row[column])
                if "pc_pid" in row:
                    row["pc_pid"] = str(self.pids[row["pc_pid"]])
                if table == "patient_access_onsite":  # PatientAccessOnsiteService: fname . lname . id
                    row["portal_username"] += str(self.patient_ids[row["pid"]])
                    row["portal_login_username"] = row["portal_login_username"] or row["portal_username"]
                if "encounter" in row and table in ("form_encounter", "forms"):
                    if row["encounter"] not in self.numbers:
                        sequence += 1
                        self.numbers[row["encounter"]] = sequence
                    row["encounter"] = self.numbers[row["encounter"]]
                for column in ("form_id", "log_id"):
                    if isinstance(row.get(column), dict):
                        row[column] = ids[id(row[column])]
                if table == "patient_data":
                    self.patient_ids[row["pid"]] = row["id"]
                if table == "log":
                    logged[id(event.values)] = row
                if table == "log_comment_encrypt":  # recordLogItem: sha3-512 of the 13 values, imploded
                    entry = logged[id(event.values["log_id"])]
                    row["checksum"] = hashlib.sha3_512("".join(str(entry[c]) for c in _LOGGED).encode()).hexdigest()
                batches[table].append(row)
            cursor = conn.connection.cursor()
            for table, rows in batches.items():
                # '' where the column's default is '' need not be sent: the database writes the same bytes.
                defaults = self._blank_defaults(table)
                _bulk_insert(cursor, table, [{k: v for k, v in row.items() if not (v == "" and k in defaults)}
                                             for row in rows])
            conn.execute(sa.text("UPDATE sequences SET id = :n"), {"n": sequence})
        return len(chunk)

    def _blank_defaults(self, table: str) -> set[str]:
        return {c.name for c in self.md.tables[table].c
                if c.server_default is not None and str(getattr(c.server_default, "arg", "")).strip() in ("''", "")}

    def _dupscore(self, conn: sa.Connection, row: dict[str, Any]) -> int:
        """updateDupScore's score (library/dupscore.inc.php) against every earlier patient, by buckets."""
        name = row["lname"]
        if name not in self.soundex:
            self.soundex[name] = conn.execute(sa.text("SELECT SOUNDEX(:n)"), {"n": name}).scalar()
        me = {"email": row["email"].strip(), "DOB": row["DOB"], "name": (row["fname"] + row["lname"]).lower(),
              "sex": row["sex"], "sx": self.soundex[name], "phones": {p.replace(" ", "") for p in
                                                                     (row["phone_home"], row["phone_cell"]) if p}}
        keys = [("email", me["email"]), ("DOB", me["DOB"]), ("name", me["name"]), ("sx", me["sx"])]
        best = 6 if me["sex"] in self.sexes else 0  # anyone earlier of the same sex scores that much
        for key in keys:
            if key[1] in ("", None):
                continue
            for other in self.buckets[key]:
                score = (6 * (me["email"] != "" and me["email"] == other["email"]) + 6 * (me["DOB"] == other["DOB"])
                         + 6 * (me["name"] == other["name"]) + 6 * (me["sex"] != "" and me["sex"] == other["sex"])
                         + 2 * (me["sx"] == other["sx"]) + 1 * bool(me["phones"] & other["phones"]))
                best = max(best, score)
        for key in keys:
            self.buckets[key].append(me)
        self.sexes.add(me["sex"])
        return best


def _bulk_insert(cursor: Any, table: str, rows: list[dict[str, Any]], per_statement: int = 2000) -> None:
    """Multi-row INSERTs written out here: the driver's own escaping of each of a million values is
    what made a 3,000-patient site slow to load."""
    columns = list(dict.fromkeys(c for row in rows for c in row))
    head = f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in columns)}) VALUES "
    for start in range(0, len(rows), per_statement):
        values = ",".join("(" + ",".join(_literal(row[c]) if c in row else "DEFAULT" for c in columns) + ")"
                          for row in rows[start:start + per_statement])
        cursor.execute(head + values)


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, datetime):
        return f"'{value:%Y-%m-%d %H:%M:%S}'"
    if isinstance(value, date):
        return f"'{value:%Y-%m-%d}'"
    if isinstance(value, bytes):
        return "X'" + value.hex() + "'"
    return "'" + str(value).replace("'", "''") + "'"


def build_site(url: str, count: int = 3000, *, now: datetime | None = None, seed: int = 1) -> Site:
    """Create OpenEMR's schema at ``url`` and load a whole site (no canaries)."""
    create_schema(url)
    site = make_site(now or datetime.now().replace(microsecond=0), count, seed=seed, posted=posted_text_columns(url))
    loader = SiteLoader(url, site)
    try:
        loader.load_until(None)
    finally:
        loader.close()
    return site


# -- planting canaries into the site, the way an operator would -------------------------------------

CANARIES = 30
# A pool as a careful operator buys it: mobiles in 40 blocks of four operators, Lyon landlines.
SPREAD_POOL = tuple(f"+33{prefix}{n:02d}{tail:04d}" for prefix in ("607", "650", "651", "601", "766")
                    for n in range(10, 18) for tail in (1123, 4756, 8391)) + tuple(
    f"+33472{n:02d}{tail:04d}" for n in range(10, 20) for tail in (2164, 6418))
DOMAINS = tuple(f"{name}.fr" for name in ("mel-famille", "boite-perso", "courrier-maison", "mes-mails",
                                          "la-boite-a-lettres", "mon-courriel", "posteperso", "courriel-foyer",
                                          "mel-maison", "boite-du-foyer", "mes-nouvelles"))


MAILBOXES = 40  # watched mailboxes at the common providers, for 30 canaries


def concealed_config(registry_url: str, site: Site | None = None, mailboxes: int = 0, seed: int = 1):
    """The #12 defaults: contact caps (3 per domain, 1 per 10,000-number block, as docs/setup.md recommends for
    concealment: the site's own mobiles are one to a block) with enough domains and blocks (SPREAD_POOL: 50
    blocks for 30 canaries); with ``mailboxes``, a pool of watched mailboxes at the site's providers
    (docs/setup.md), holders named after the generations of the site's adult patients and in its
    proportions of women and men (a canary takes its holder's sex), as docs/setup.md advises."""
    from dataclasses import replace

    from support.plant_helpers import production_config

    config = production_config(registry_url, pool=SPREAD_POOL, domains=DOMAINS)
    contacts = replace(config.contacts, max_per_email_domain=3, max_per_phone_block=1)
    if mailboxes:
        contacts = replace(contacts, mailbox_pool=mailbox_pool(mailboxes, seed, _adult_births(site),
                                                               women=_women_share(site)))
    return replace(config, contacts=contacts)


def _adult_births(site: Site | None) -> list[int]:
    if site is None:
        return []
    return [e.values["DOB"].year for e in site.events if e.table == "patient_data" and "DOB" in e.values
            and (site.now.date() - e.values["DOB"]).days >= 18 * 365]


def _women_share(site: Site | None) -> float:
    sexes = [e.values["sex"] for e in site.events if e.table == "patient_data" and "sex" in e.values] \
        if site is not None else []
    return sexes.count("Female") / len(sexes) if sexes else 0.5


def mailbox_pool(count: int, seed: int, births: Sequence[int] = (), women: float = 0.5):
    """``count`` mailboxes as an operator opens them: providers weighted like the site's patients, a holder
    each, whose first name is one given in the decade of a birth year drawn from ``births`` (1950-1990
    without them), ``women`` of them women."""
    from canary.contacts import Mailbox
    from canary.identity import refdata
    from canary.identity.accounts import slug
    from canary.identity.sampling import pick

    rng = random.Random(seed)
    providers, weights = zip(*PROVIDERS)
    decades = [min(2000, max(1920, year - year % 10)) for year in births] or [1950, 1960, 1970, 1980, 1990]
    sexes = ["F"] * round(count * women) + ["M"] * (count - round(count * women))
    rng.shuffle(sexes)
    pool: dict[str, Mailbox] = {}
    while len(pool) < count:
        sex = sexes[len(pool)]
        first = pick(rng, refdata.first_names(sex, rng.choice(decades)))
        last = pick(rng, refdata.surnames())
        if " " in first or not all(part.isalpha() for part in last.replace("-", " ").replace("'", " ").split()):
            continue
        suffix = str(rng.randrange(100)) if rng.random() < 0.5 else ""
        address = f"{slug(first)}.{slug(last).replace(' ', '')}{suffix}@{rng.choices(providers, weights)[0]}"
        pool.setdefault(address, Mailbox(address, first, last, sex))
    return tuple(pool.values())


def drip_period(site: Site, count: int = CANARIES, share: float = 0.02) -> timedelta:
    """The shortest drip period the site's pace allows for ``count`` canaries at ``share`` of new patients."""
    year = [e.at for e in site.events if e.table == "patient_data" and e.at >= site.now - timedelta(days=365)]
    return timedelta(days=math.ceil(365 * count / (share * max(1, len(year)))) + 1)


def drip_plant(url: str, site: Site, registry, config, source: str, *, count: int = CANARIES, seed: int = 1,
               event_every: timedelta | None = None) -> timedelta:
    """Drip ``count`` canaries over the period the site's pace needs at 2 % (drip.max_share), then play
    the time: the site's rows up to each drawn moment (canary.planting.schedule.draw_due_times, as
    `canary plant --over` draws them), then at that moment, the clock frozen there, what `canary drip run`
    does for a due slot: one canary planted in its own drip batch (canary.planting.planter.plant), and
    the later events due to the canaries already planted (canary.planting.events.add_due_events), at
    ``event_every`` (None: drip.event_every's default, the revisit pace the seeder learned from the site).
    Returns the drip period."""
    from datetime import timezone

    from freezegun import freeze_time

    from canary.planting.drip import DRIP_KIND, _OpenSeeders, batch_label
    from canary.planting.events import add_due_events
    from canary.planting.planter import plant
    from canary.planting.schedule import draw_due_times, site_growth, site_hour_weights

    period = drip_period(site, count)
    start = site.now.replace(tzinfo=timezone.utc) - period
    # The hours `canary plant --over` learns from the site's registrations of the two years before, its
    # trend from the year before (canary.cli.drip.plant_over).
    year = [e.at.replace(tzinfo=DATABASE_ZONE) for e in site.events if e.table == "patient_data"
            and start.replace(tzinfo=None) - timedelta(days=730) <= e.at < start.replace(tzinfo=None)]
    due = draw_due_times(count, start, period - timedelta(days=1), random.Random(seed),
                         hour_weights=site_hour_weights(year), growth=site_growth(year, start))
    loader = SiteLoader(url, site)
    try:
        for index, moment in enumerate(due):
            loader.load_until(moment.astimezone(DATABASE_ZONE).replace(tzinfo=None))
            # One open seeder for the run's events and its planting, as `canary drip run` keeps it
            # (opening one reads the site's habits: a second of the test's time per run).
            seeders = _OpenSeeders(registry, os.environ)
            try:
                with freeze_time(moment):
                    add_due_events(registry, moment, event_every, seeders=seeders)
                    plant(registry, config, source, 1, seed=seed * 1000 + index,
                          batch_label=batch_label(source, moment), batch_kind=DRIP_KIND, seeder=seeders.get(source))
            finally:
                seeders.close()
        loader.load_until(None)
        end = site.now.replace(tzinfo=timezone.utc)
        with freeze_time(end):
            add_due_events(registry, end, event_every)
    finally:
        loader.close()
    return period
