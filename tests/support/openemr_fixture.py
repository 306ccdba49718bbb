"""A French OpenEMR site with 300 patients, as its staff entered them.

The site has its habits, which the seeder must copy: surnames in upper case,
phones written "06 12 34 56 78", NIR in ``ss`` without spaces, country FR,
language french, one usual provider, portal logins that are e-mails, an
employer_data and a history_data row per patient, allergies picked from the
site's list, portal passwords hashed at bcrypt cost 5 (a site setting the
seeder must follow; it also keeps the tests fast). Patient ids run ahead of pids (deleted patients), so the portal
account name (fname + lname + id) must use the real next id.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

from support.app_seeder_helpers import insert_rows, load_sql, load_sql_file, query
from canary.model import Sex
from seeders.openemr.values import comb_uuid
from support.sql_seeder_helpers import make_identity

SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "openemr" / "schema.sql"
TABLES = ("uuid_registry", "patient_data", "employer_data", "history_data", "insurance_data", "lists", "lists_touch",
          "patient_access_onsite", "log", "log_comment_encrypt", "users", "list_options", "facility", "version",
          "globals", "layout_options", "form_encounter", "forms", "form_vitals", "openemr_postcalendar_events",
          "sequences")
# What OpenEMR's installer writes in the version table for 8.2.0 (version.php: v_database 541, v_acl 13).
INSTALLED_VERSION = ("UPDATE version SET v_major = 8, v_minor = 2, v_patch = 0, v_realpatch = 0, v_tag = '', "
                     "v_database = 541, v_acl = 13")
ID_GAP = 7  # patient_data.id = pid + ID_GAP for the later patients
ALLERGY_OPTIONS = ("penicillin", "sulfa", "iodine", "codeine")


def create_site(url: str, count: int = 300) -> None:
    load_sql_file(url, SCHEMA)
    load_sql(url, INSTALLED_VERSION)
    load_sql(url, "INSERT INTO users (id, username, fname, lname, authorized, facility_id, active) VALUES "
                  "(1, 'admin', 'Administrator', 'Administrator', 1, 3, 1), "
                  "(2, 'cmoreau', 'Claire', 'Moreau', 1, 3, 1), (3, 'accueil', 'Accueil', 'Accueil', 0, 3, 1);"
                  "INSERT INTO facility (id, name, country_code) VALUES (3, 'Clinique du Parc', 'FR');"
                  "INSERT INTO list_options (list_id, option_id, title, seq) VALUES "
                  + ", ".join(f"('allergy_issue_list', '{o}', '{o}', {10 * i})" for i, o in enumerate(ALLERGY_OPTIONS))
                  + ";")
    populate(url, count)


def posted_text_columns(url: str) -> list[str]:
    """The patient_data text columns of the DEM layout (uor > 0): the new-patient form writes '' in them."""
    return [r["field_id"] for r in query(
        url, "SELECT l.field_id FROM layout_options l JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = "
             "DATABASE() AND c.TABLE_NAME = 'patient_data' AND c.COLUMN_NAME = l.field_id "
             "WHERE l.form_id = 'DEM' AND l.uor > 0 AND c.DATA_TYPE IN ('varchar', 'text', 'tinytext', "
             "'mediumtext', 'longtext', 'char')")]


def populate(url: str, count: int) -> None:
    rnd = random.Random(11)
    blank = dict.fromkeys(posted_text_columns(url), "")
    registry, patients, employers, histories, lists, touches, portal = [], [], [], [], [], [], []
    start = datetime(2021, 3, 1, 8, 0, 0)
    for pid in range(1, count + 1):
        ident = make_identity(200000 + pid)
        created = start + timedelta(hours=pid * 5, minutes=rnd.randrange(60))
        patient_uuid = comb_uuid(created.timestamp())
        registry.append(_registry(patient_uuid, "patient_data", created))
        patients.append(dict(
            blank,
            id=pid if pid <= 100 else pid + ID_GAP, uuid=patient_uuid, pid=pid, pubpid=str(pid),
            title="Mr." if ident.sex is Sex.MALE else "Mrs.", language="french", fname=ident.first_name,
            lname=ident.last_name.upper(), mname="", DOB=ident.birth_date, street=ident.address.line1,
            street_line_2=ident.address.line2 or None, postal_code=ident.address.postcode,
            city=ident.address.city, state="", country_code="FR",
            ss=f"{ident.nir[:5]}77{pid:06d}{pid % 97:02d}",
            phone_home="" if pid % 3 else f"01 45 67 {pid // 100:02d} {pid % 100:02d}",
            phone_cell=f"06 {rnd.randrange(10, 99)} 44 {pid // 100:02d} {pid % 100:02d}",
            email=f"patient{pid}@exemple-mail.fr",
            sex="Male" if ident.sex is Sex.MALE else "Female", providerID=2 if pid % 10 else None,
            hipaa_allowsms="NO", hipaa_allowemail="NO", hipaa_voice="YES", hipaa_mail="YES", hipaa_notice="YES",
            regdate=created, date=created + timedelta(days=rnd.randrange(30)), created_by=3, updated_by=3,
            birth_lname=ident.birth_name.upper(), birth_fname=ident.first_name, dupscore=0,
            occupation="", industry="", pricelevel="standard",
            allow_patient_portal="YES" if pid % 3 == 0 else "",
        ))
        employers.append(dict(pid=pid, date=created, name="", street="", postal_code="", city="", state="",
                              country="", created_by=3))
        history_uuid = comb_uuid(created.timestamp() + 1)
        registry.append(_registry(history_uuid, "history_data", created))
        histories.append(dict(pid=pid, date=created, uuid=history_uuid))
        if pid % 5 == 0:
            option = ALLERGY_OPTIONS[pid % len(ALLERGY_OPTIONS)]
            list_uuid = comb_uuid(created.timestamp() + 2)
            registry.append(_registry(list_uuid, "lists", created))
            lists.append(dict(uuid=list_uuid, date=created, type="allergy", title=option, pid=pid, activity=1,
                              comments="", diagnosis="", occurrence=0, classification=0, referredby="",
                              user="accueil", groupname="Default", outcome=0, destination="", reaction="",
                              verification="confirmed", severity_al="", list_option_id=option))
            touches.append(dict(pid=pid, type="allergy", date=created))
        if pid % 3 == 0:
            portal.append(dict(pid=pid, portal_username=f"{ident.first_name}{ident.last_name.upper()}{pid}",
                               portal_login_username=f"patient{pid}@exemple-mail.fr",
                               portal_pwd="$2y$05$" + "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789./")
                                                              for _ in range(53)),
                               portal_pwd_status=1, date_created=created + timedelta(minutes=rnd.randrange(5, 240))))
    clinical = clinical_activity(rnd, patients, registry)
    for table, rows in (("uuid_registry", registry), ("patient_data", patients), ("employer_data", employers),
                        ("history_data", histories), ("lists", lists + clinical["lists"]), ("lists_touch", touches),
                        ("patient_access_onsite", portal), ("form_encounter", clinical["form_encounter"]),
                        ("form_vitals", clinical["form_vitals"]), ("forms", clinical["forms"]),
                        ("openemr_postcalendar_events", clinical["openemr_postcalendar_events"])):
        insert_rows(url, table, rows)
    load_sql(url, f"UPDATE sequences SET id = {clinical['last_encounter']}")


def _registry(raw: bytes, table: str, created: datetime) -> dict:
    return dict(uuid=raw, table_name=table, table_id="id", table_vertical="", couchdb="", document_drive=0,
                mapped=0, created=created)


PROBLEMS = (("Hypertension", "ICD10:I10"), ("Type 2 diabetes", "ICD10:E11.9"), ("Asthma", "ICD10:J45.909"),
            ("Hypothyroidism", "ICD10:E03.9"), ("Low back pain", "ICD10:M54.5"))
# Free text staff wrote about real patients: never to be found in a canary's rows.
PRIVATE = {"encounter": "Facture envoyée à la mutuelle de M. Durand", "vitals": "Patiente anxieuse, tension reprise",
           "issue": "Mère diabétique, suivi par le Dr Petit", "appointment": "Rappeler Mme Leroy avant le RDV"}
MEDICATIONS = ("Amlodipine 5 mg", "Metformin 850 mg", "Levothyrox 75 µg", "Paracetamol 1 g", "Ventoline")


def clinical_activity(rnd: random.Random, patients: list[dict], registry: list[dict]) -> dict:
    """What the site's clinicians write on the registration day, as OpenEMR's screens do: a date-only
    encounter and its forms row by Dr Moreau (users.id 2) for 70 %, vitals (lb, in, °F) for 80 % of them,
    problems and medications for some, a follow-up booked for 40 %."""
    out: dict = {"form_encounter": [], "forms": [], "form_vitals": [], "lists": [],
                 "openemr_postcalendar_events": []}
    number = 1000
    for n, patient in enumerate(patients, start=1):
        created, pid = patient["regdate"], patient["pid"]
        if rnd.random() >= 0.7:
            continue
        number += 1 + rnd.randrange(3)  # sequences also numbers other things
        seen = created + timedelta(minutes=rnd.randrange(15, 120))
        day = datetime.combine(seen.date(), datetime.min.time())
        uuid = comb_uuid(seen.timestamp())
        registry.append(_registry(uuid, "form_encounter", seen))
        out["form_encounter"].append(dict(id=n, uuid=uuid, date=day, reason=rnd.choice(("Consultation", "Bilan", "")),
                                          facility="Clinique du Parc", facility_id=3, pid=pid, encounter=number,
                                          pc_catid=rnd.choice((5, 9)), provider_id=2, billing_facility=3,
                                          sensitivity="normal", class_code="AMB", pos_code=11,
                                          billing_note=rnd.choice(("", PRIVATE["encounter"])),
                                          invoice_refno=rnd.choice(("", f"F{number}")), external_id=f"EXT{number}"))
        out["forms"].append(dict(date=day, encounter=number, form_name="New Patient Encounter", form_id=n, pid=pid,
                                 user="cmoreau", groupname="Default", authorized=1, deleted=0, formdir="newpatient"))
        if rnd.random() < 0.8:
            male = patient["sex"] == "Male"
            height = rnd.gauss(69 if male else 64, 3)
            weight = rnd.gauss(180 if male else 150, 25)
            measured = seen + timedelta(minutes=rnd.randrange(2, 12))
            out["form_vitals"].append(dict(
                id=len(out["form_vitals"]) + 1, uuid=None, date=measured, pid=pid, user="cmoreau", groupname="Default",
                authorized=1, activity=1, bps=str(rnd.randrange(105, 160)), bpd=str(rnd.randrange(60, 95)),
                weight=round(weight, 2), height=round(height, 2), temperature=round(rnd.gauss(98.2, 0.5), 1),
                temp_method="Oral", pulse=rnd.randrange(55, 100), respiration=rnd.randrange(12, 20),
                note=rnd.choice(("", PRIVATE["vitals"])),
                BMI=round(703 * weight / height ** 2, 1), BMI_status="", waist_circ=0, head_circ=0,
                oxygen_saturation=rnd.randrange(94, 100)))
            out["forms"].append(dict(date=measured, encounter=number, form_name="Vitals",
                                     form_id=len(out["form_vitals"]), pid=pid, user="cmoreau", groupname="Default",
                                     authorized=1, deleted=0, formdir="vitals"))
        for kind, chance in (("medical_problem", 0.3), ("medication", 0.25)):
            if rnd.random() < chance:
                title, code = rnd.choice(PROBLEMS) if kind == "medical_problem" else (rnd.choice(MEDICATIONS), "")
                entered = seen + timedelta(minutes=rnd.randrange(5, 30))
                uuid = comb_uuid(entered.timestamp())
                registry.append(_registry(uuid, "lists", entered))
                out["lists"].append(dict(uuid=uuid, date=entered, type=kind, title=title, diagnosis=code,
                                         begdate=datetime.combine(entered.date(), datetime.min.time()), pid=pid,
                                         activity=1, comments=rnd.choice(("", PRIVATE["issue"])), occurrence=0,
                                         classification=0, referredby="",
                                         user="cmoreau", groupname="Default", outcome=0, destination="",
                                         reaction="", verification="", severity_al=None, list_option_id=None))
        if rnd.random() < 0.4:
            booked = seen + timedelta(minutes=rnd.randrange(20, 60))
            on = booked.date() + timedelta(days=rnd.randrange(7, 60))
            start = rnd.choice(("09:00:00", "09:30:00", "10:15:00", "14:00:00", "16:45:00"))
            out["openemr_postcalendar_events"].append(dict(
                pc_catid=9, pc_multiple=0, pc_aid="2", pc_pid=str(pid), pc_title="Established Patient",
                pc_time=booked, pc_hometext=rnd.choice(("", PRIVATE["appointment"])), pc_informant="3",
                pc_conttel=rnd.choice(("", "06 11 22 33 44")), pc_eventDate=on, pc_endDate=on, pc_duration=900,
                pc_recurrtype=0, pc_recurrspec='a:5:{s:17:"event_repeat_freq";s:1:"0";}', pc_startTime=start,
                pc_endTime=start, pc_alldayevent=0, pc_apptstatus=rnd.choice(("-", "-", ">", "x", "?")),
                pc_eventstatus=1, pc_sharing=1, pc_facility=3, pc_billing_location=3, pc_room=""))
    out["last_encounter"] = number
    return out
