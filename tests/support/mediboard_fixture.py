"""A French hospital's Mediboard with 300 patients, as its staff and interfaces entered them.

Three generations of the same hospital, by dPpatients version:

- ``2.37`` (tests/fixtures/mediboard/schema.sql): NOM upper case, Prénom
  capitalised with its accents (light identity vigilance), second first names in
  ``prenom_2``, every creation in ``user_log``;
- ``3.35`` (schema.sql + upgrade-3.35.sql): the same, with ``creator_id``,
  ``creation_date`` and ``patient_signature`` rows;
- ``4.94``, OX 4.x (schema-ox4.sql): strict identity vigilance (names and first
  names upper case, without accents), every first name in ``prenoms``,
  ``prenom_usuel`` filled, a manual ``source_identite`` per patient and its
  status, history in ``user_action`` (``activer_user_action`` on in
  ``config_db``) or in ``user_log``, the IPP creation logged.

Habits shared by all: Soundex2 columns filled, birth dates as 'YYYY-MM-DD'
text, phones as ten digits, IPPs of six digits under the tag ``ipp_chu``,
every creation by the admission clerk (user 7) from one workstation, blood
groups and allergies in the medical records, 'France' in ``pays``.

The names here are written with this module's own small transformations, not
with the seeder's vigilance module, so the tests compare two implementations.
"""

from __future__ import annotations

import random
import re
import socket
import unicodedata
from datetime import date, datetime, timedelta
from pathlib import Path

from support.app_seeder_helpers import execute, insert_rows, load_sql_file, query
from canary.model import Sex
from seeders.mediboard.soundex2 import soundex2
from support.sql_seeder_helpers import make_identity

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mediboard"
SCHEMA = FIXTURES / "schema.sql"
SCHEMA_OX4 = FIXTURES / "schema-ox4.sql"
UPGRADE_335 = FIXTURES / "upgrade-3.35.sql"
VERSIONS = ("2.37", "3.35", "4.94")
TABLES = ("patients", "medecin", "id_sante400", "dossier_medical", "antecedent", "user_log")
TABLES_BY_VERSION = {
    "2.37": TABLES,
    "3.35": TABLES + ("patient_signature",),
    "4.94": TABLES + ("patient_signature", "source_identite", "user_action", "user_action_data"),
}
IPP_TAG = "ipp_chu"
CLERK = 7
WORKSTATION = socket.inet_aton("10.12.3.45")
MOREAU = 3  # medecin_id of Dr Claire Moreau, the identities' GP
CLASSES = {"CPatient": 1, "CSourceIdentite": 2, "CIdSante400": 3, "CDossierMedical": 4, "CAntecedent": 5,
           "CSejour": 6, "CConsultation": 7, "CConstantesMedicales": 8}
DR_ROUX, DR_KLEIN = 21, 22  # practitioners (plageconsult.chir_id); Dr Roux sees most patients
PRACTITIONER_DESK = {DR_ROUX: socket.inet_aton("10.12.5.21"), DR_KLEIN: socket.inet_aton("10.12.5.22")}


def create_site(url: str, count: int = 300, version: str = "2.37", log_table: str = "user_action",
                today: date | None = None) -> None:
    """The hospital at this dPpatients version (4.94: history in ``log_table``); its consultation
    ranges around ``today`` (default: the database server's date), one open all that day."""
    if version == "4.94":
        load_sql_file(url, SCHEMA_OX4)
        insert_rows(url, "object_class", [dict(object_class_id=i, object_class=c) for c, i in CLASSES.items()])
        insert_rows(url, "config_db", [dict(key="activer_user_action", value="1" if log_table == "user_action"
                                            else "0")])
    else:
        load_sql_file(url, SCHEMA)
        if version == "3.35":
            load_sql_file(url, UPGRADE_335)
    insert_rows(url, "medecin", [
        dict(medecin_id=n, nom=nom, prenom=prenom, sexe=sexe, cp=cp, ville=ville, type="medecin")
        for n, (nom, prenom, sexe, cp, ville) in enumerate([
            ("DURAND", "Paul", "m", "75011", "PARIS"), ("PETIT", "Anne", "f", "69003", "LYON"),
            ("MOREAU", "Claire", "f", "33000", "BORDEAUX"), ("LEROY", "Marc", "m", "59000", "LILLE")], start=1)])
    populate(url, count, version, log_table if version == "4.94" else "user_log")
    if version == "4.94":
        consultations(url, count, log_table, today)


def strict(name: str) -> str:
    """A name as a strict-mode Mediboard shows it: upper case, no accents, only letters, - and '."""
    plain = unicodedata.normalize("NFD", name.replace("Œ", "OE").replace("œ", "oe"))
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return re.sub(r"[^A-Za-z\-']", " ", plain).upper()


def populate(url: str, count: int, version: str = "2.37", log_table: str = "user_log") -> None:
    rnd = random.Random(23)
    ox4, creator = version == "4.94", version in ("3.35", "4.94")
    rows: dict[str, list[dict]] = {t: [] for t in ("patients", "id_sante400", "dossier_medical", "antecedent",
                                                   "user_log", "user_action", "user_action_data",
                                                   "patient_signature", "source_identite")}
    start = datetime(2020, 9, 1, 7, 30)
    dossier_id = antecedent_id = 0
    action_id = 1000000000

    def log(object_id: int, object_class: str, when: datetime, kind: str = "create", old: dict | None = None,
            user: int = CLERK, address: bytes = WORKSTATION) -> None:
        nonlocal action_id
        if log_table == "user_action":
            rows["user_action"].append(dict(user_action_id=action_id, user_id=user, object_id=object_id,
                                            object_class_id=CLASSES[object_class], type=kind, date=when,
                                            ip_address=address))
            for field, value in (old or {}).items():
                rows["user_action_data"].append(dict(user_action_id=action_id, field=field, value=value))
            action_id += 1
            return
        extra = "{" + ",".join(f'"{f}":"{v or ""}"' for f, v in old.items()) + "}" if old else None
        rows["user_log"].append(dict(user_id=user, object_id=object_id, object_class=object_class, type=kind,
                                     date=when, fields=" ".join(old) if old else None, ip_address=address,
                                     extra=extra))

    for pid in range(1, count + 1):
        ident = make_identity(400000 + pid)
        created = start + timedelta(hours=pid * 6, minutes=rnd.randrange(60))
        female = ident.sex is Sex.FEMALE
        if ox4:
            nom, birth = strict(ident.last_name), strict(ident.birth_name)
            firsts = [strict(p) for p in ident.first_names]
        else:
            nom, birth = ident.last_name.upper(), ident.birth_name.upper()
            firsts = [p.lower().title() for p in ident.first_names]
        nom_jf = birth if female or ox4 else None
        patient = dict(
            patient_id=pid, nom=nom, nom_jeune_fille=nom_jf, prenom=firsts[0],
            nom_soundex2=soundex2(nom), prenom_soundex2=soundex2(firsts[0]),
            nomjf_soundex2=soundex2(nom_jf) if nom_jf else None, naissance=ident.birth_date.isoformat(),
            sexe="f" if female else "m", civilite="mme" if female else "m",
            adresse=ident.address.line1, ville=ident.address.city.upper(), cp=ident.address.postcode,
            tel=None if pid % 3 else f"01456{pid:05d}", tel2=f"06{rnd.randrange(10, 99)}55{pid:04d}",
            email=None if pid % 4 == 0 else f"patient{pid}@exemple-mail.fr",
            matricule=f"{ident.nir[:5]}66{pid:06d}{pid % 97:02d}", medecin_traitant=rnd.choice([1, 2, 4, None]),
            pays="France", pays_insee=250, tutelle="aucune", medecin_traitant_declare="1",
        )
        if ox4:
            patient.update(prenoms=" ".join(firsts), prenom_usuel=firsts[0], group_id=1,
                           status="VALI" if pid % 5 else "PROV", source_identite_id=pid)
        else:
            patient.update(prenom_2=firsts[1] if len(firsts) > 1 else None, status="VALI" if pid % 5 else "PROV")
        if creator:
            patient.update(creator_id=CLERK, creation_date=created)
        rows["patients"].append(patient)
        log(pid, "CPatient", created)
        if creator:
            sign = [nom] + ([nom_jf] if nom_jf and nom_jf != nom else [])
            for n in sign:
                text = "_".join(re.sub(r"[\s'-]+", "", x) for x in (n, firsts[0], patient["naissance"]))
                plain = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if not unicodedata.combining(c))
                rows["patient_signature"].append(dict(patient_id=pid, signature=plain))
        if ox4:
            rows["source_identite"].append(dict(
                source_identite_id=pid, patient_id=pid, active="1", mode_obtention="manuel", nom_naissance=nom_jf,
                prenom_naissance=firsts[0], prenoms=" ".join(firsts), date_naissance=patient["naissance"],
                sexe=patient["sexe"], debut=created.date()))
            log(pid, "CSourceIdentite", created)
            log(pid, "CPatient", created, "store", {"status": None})
            log(pid, "CPatient", created, "store", {"source_identite_id": None})
        rows["id_sante400"].append(dict(object_class="CPatient", object_id=pid, tag=IPP_TAG,
                                        id400=f"{4000 + pid * 3:06d}", last_update=created, datetime_create=created))
        if ox4:
            log(len(rows["id_sante400"]), "CIdSante400", created)
        if pid % 50 == 0:  # a merge left its trace
            rows["id_sante400"].append(dict(object_class="CPatient", object_id=pid, tag="merged",
                                            id400=str(pid + 9000), last_update=created, datetime_create=created))
        if pid % 10 < 7:
            dossier_id += 1
            group = rnd.choice(["A", "O", "B", "AB"])
            rows["dossier_medical"].append(dict(dossier_medical_id=dossier_id, object_class="CPatient",
                                                object_id=pid, groupe_sanguin=group,
                                                rhesus=rnd.choice(["POS", "POS", "NEG"]), codes_cim="",
                                                groupe_ok="0"))
            log(dossier_id, "CDossierMedical", created)
            if pid % 4 == 0:
                antecedent_id += 1
                rows["antecedent"].append(dict(antecedent_id=antecedent_id, type="alle", rques=rnd.choice(
                    ["Pénicilline", "Iode", "Latex", "Aspirine"]), dossier_medical_id=dossier_id, annule="0",
                    owner_id=CLERK, creation_date=created))
                log(antecedent_id, "CAntecedent", created)
        if pid % 7 == 0:  # someone corrected the address later
            log(pid, "CPatient", created + timedelta(days=3), "store", {"adresse": "ancienne adresse"}, user=12,
                address=socket.inet_aton("10.12.9.9"))
    for table, table_rows in rows.items():
        insert_rows(url, table, table_rows)


def consultations(url: str, count: int, log_table: str, today: date | None = None) -> None:
    """Two practitioners' consultation ranges (one open all of ``today``) and the consultations of 60 % of the
    patients, each with vital signs (weight, height, blood pressure in cmHg, pulse) by the practitioner."""
    today = today or query(url, "SELECT CURDATE() AS d")[0]["d"]
    plages, consults, measures, actions, logs = [], [], [], [], []
    action_id = (query(url, "SELECT COALESCE(MAX(user_action_id), 999999999) + 1 AS n FROM user_action")[0]["n"])
    rnd = random.Random(5)
    for n, days in enumerate(range(-40, 1, 4)):
        day = today + timedelta(days=days)
        for chir in (DR_ROUX, DR_KLEIN):
            plages.append(dict(plageconsult_id=len(plages) + 1, chir_id=chir, date=day, freq="00:15:00",
                               debut="00:00:00" if days == 0 else "08:00:00",
                               fin="23:59:00" if days == 0 else "12:00:00", libelle="Consultations"))
    for pid in range(1, count + 1):
        if pid % 5 in (1, 3):
            continue
        plage = rnd.choice([p for p in plages if p["date"] < today and (p["chir_id"] == DR_ROUX or pid % 3 == 0)])
        heure = timedelta(hours=8, minutes=15 * rnd.randrange(16))
        when = datetime.combine(plage["date"], datetime.min.time()) + heure
        cid = len(consults) + 1
        consults.append(dict(consultation_id=cid, plageconsult_id=plage["plageconsult_id"], patient_id=pid,
                             owner_id=plage["chir_id"], creation_date=when - timedelta(days=2), heure=str(heure),
                             chrono="64", annule="0", type="classique", motif="Consultation de suivi",
                             arrivee=when, duree=1))
        measures.append(dict(constantes_medicales_id=cid, patient_id=pid, datetime=when + timedelta(minutes=7),
                             context_class="CConsultation", context_id=cid, user_id=plage["chir_id"],
                             creation_date=when + timedelta(minutes=7), poids=round(rnd.uniform(50, 95), 1),
                             taille=float(rnd.randrange(155, 190)), ta=f"{rnd.randrange(11, 15)}|{rnd.randrange(6, 9)}",
                             pouls=rnd.randrange(58, 90), temperature=36.8 if pid % 3 == 0 else None))
        for object_id, object_class, user, at in ((cid, "CConsultation", plage["chir_id"], when - timedelta(days=2)),
                                                  (cid, "CConstantesMedicales", plage["chir_id"],
                                                   when + timedelta(minutes=7))):
            if log_table == "user_action":
                actions.append(dict(user_action_id=action_id, user_id=user, object_id=object_id,
                                    object_class_id=CLASSES[object_class], type="create", date=at,
                                    ip_address=PRACTITIONER_DESK[user]))
                action_id += 1
            else:
                logs.append(dict(user_id=user, object_id=object_id, object_class=object_class, type="create",
                                 date=at, fields=None, ip_address=PRACTITIONER_DESK[user], extra=None))
    for table, rows in (("plageconsult", plages), ("consultation", consults), ("constantes_medicales", measures),
                        ("user_action", actions), ("user_log", logs)):
        insert_rows(url, table, rows)


def set_vigilance(url: str, mode: str, group_id: int = 1) -> None:
    """The group config of dPpatients' identity vigilance (table configuration), as the 2015-2021 code reads it."""
    execute(url, "INSERT INTO configuration (feature, value, object_class, object_id) VALUES "
                 "('dPpatients CPatient mode_identito_vigilance', :m, 'CGroups', :g)", m=mode, g=group_id)


def checksums(url: str) -> dict[str, int]:
    """MariaDB's CHECKSUM TABLE of every table: byte-for-byte equality of their contents."""
    tables = [r["TABLE_NAME"] for r in query(url, "SELECT TABLE_NAME FROM information_schema.TABLES "
                                                  "WHERE TABLE_SCHEMA = DATABASE()")]
    return {r["Table"].split(".")[-1]: r["Checksum"] for r in query(url, f"CHECKSUM TABLE {', '.join(tables)}")}
