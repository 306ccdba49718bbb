"""A French hospital's Mediboard with 300 patients, as its staff and interfaces entered them.

Its habits, which the seeder must copy: NOM upper case, Prénom capitalised,
Soundex2 columns filled, birth dates as 'YYYY-MM-DD' text, phones as ten
digits, IPPs of six digits under the tag ``ipp_chu``, every creation logged
by the admission clerk (user 7) from one workstation, blood groups and
allergies in the medical records, 'France' in ``pays``.
"""

from __future__ import annotations

import random
import socket
from datetime import datetime, timedelta
from pathlib import Path

from support.app_seeder_helpers import insert_rows, load_sql_file
from canary.model import Sex
from seeders.mediboard.soundex2 import soundex2
from support.sql_seeder_helpers import make_identity

SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "mediboard" / "schema.sql"
TABLES = ("patients", "medecin", "id_sante400", "dossier_medical", "antecedent", "user_log")
IPP_TAG = "ipp_chu"
CLERK = 7
WORKSTATION = socket.inet_aton("10.12.3.45")
MOREAU = 3  # medecin_id of Dr Claire Moreau, the identities' GP


def create_site(url: str, count: int = 300) -> None:
    load_sql_file(url, SCHEMA)
    insert_rows(url, "medecin", [
        dict(medecin_id=n, nom=nom, prenom=prenom, sexe=sexe, cp=cp, ville=ville, type="medecin")
        for n, (nom, prenom, sexe, cp, ville) in enumerate([
            ("DURAND", "Paul", "m", "75011", "PARIS"), ("PETIT", "Anne", "f", "69003", "LYON"),
            ("MOREAU", "Claire", "f", "33000", "BORDEAUX"), ("LEROY", "Marc", "m", "59000", "LILLE")], start=1)])
    populate(url, count)


def populate(url: str, count: int) -> None:
    rnd = random.Random(23)
    patients, idex, dossiers, antecedents, logs = [], [], [], [], []
    start = datetime(2020, 9, 1, 7, 30)
    dossier_id = antecedent_id = 0
    for pid in range(1, count + 1):
        ident = make_identity(400000 + pid)
        created = start + timedelta(hours=pid * 6, minutes=rnd.randrange(60))
        nom, birth = ident.last_name.upper(), ident.birth_name.upper()
        prenom = ident.first_name.lower().title()
        female = ident.sex is Sex.FEMALE
        patients.append(dict(
            patient_id=pid, nom=nom, nom_jeune_fille=birth if female else None, prenom=prenom,
            prenom_2=ident.first_names[1].title() if len(ident.first_names) > 1 else None,
            nom_soundex2=soundex2(nom), prenom_soundex2=soundex2(prenom),
            nomjf_soundex2=soundex2(birth) if female else None, naissance=ident.birth_date.isoformat(),
            sexe="f" if female else "m", civilite="mme" if female else "m",
            adresse=ident.address.line1, ville=ident.address.city.upper(), cp=ident.address.postcode,
            tel=None if pid % 3 else f"01456{pid:05d}", tel2=f"06{rnd.randrange(10, 99)}55{pid:04d}",
            email=None if pid % 4 == 0 else f"patient{pid}@exemple-mail.fr",
            matricule=f"{ident.nir[:5]}66{pid:06d}{pid % 97:02d}", medecin_traitant=rnd.choice([1, 2, 4, None]),
            pays="France", pays_insee=250, status="VALI" if pid % 5 else "PROV", tutelle="aucune",
            medecin_traitant_declare="1",
        ))
        logs.append(_log(pid, "CPatient", created))
        idex.append(dict(object_class="CPatient", object_id=pid, tag=IPP_TAG, id400=f"{4000 + pid * 3:06d}",
                         last_update=created))
        if pid % 50 == 0:  # a merge left its trace
            idex.append(dict(object_class="CPatient", object_id=pid, tag="merged", id400=str(pid + 9000),
                             last_update=created))
        if pid % 10 < 7:
            dossier_id += 1
            group = rnd.choice(["A", "O", "B", "AB"])
            dossiers.append(dict(dossier_medical_id=dossier_id, object_class="CPatient", object_id=pid,
                                 groupe_sanguin=group, rhesus=rnd.choice(["POS", "POS", "NEG"]), codes_cim="",
                                 groupe_ok="0"))
            logs.append(_log(dossier_id, "CDossierMedical", created))
            if pid % 4 == 0:
                antecedent_id += 1
                antecedents.append(dict(antecedent_id=antecedent_id, type="alle", rques=rnd.choice(
                    ["Pénicilline", "Iode", "Latex", "Aspirine"]), dossier_medical_id=dossier_id, annule="0",
                    owner_id=CLERK, creation_date=created))
                logs.append(_log(antecedent_id, "CAntecedent", created))
        if pid % 7 == 0:  # someone corrected the address later
            logs.append(dict(user_id=12, object_id=pid, object_class="CPatient", type="store",
                             date=created + timedelta(days=3), fields="adresse",
                             extra='{"adresse":"ancienne adresse"}', ip_address=socket.inet_aton("10.12.9.9")))
    for table, rows in (("patients", patients), ("id_sante400", idex), ("dossier_medical", dossiers),
                        ("antecedent", antecedents), ("user_log", logs)):
        insert_rows(url, table, rows)


def _log(object_id: int, object_class: str, when: datetime) -> dict:
    return dict(user_id=CLERK, object_id=object_id, object_class=object_class, type="create", date=when,
                fields=None, ip_address=WORKSTATION, extra=None)
