"""The rows Mediboard writes for a new patient, in its own order.

``CPatient::store`` (OX 2023 ``modules/dPpatients/classes/CPatient.php``)
inserts ``patients`` (updatePlainFields: names through the identity-vigilance
mode (vigilance.py), the three Soundex2 columns, the civility guessed from sex
and age; since dPpatients 3.35 ``creator_id``/``creation_date``; since 4.33
all first names in ``prenoms``) and logs its creation (journal.py); since 3.01
``CPatientSignature::addPatientSignature`` adds one ``patient_signature`` row,
two when the birth name differs; since 4.39 ``CSourceIdentite::manageSource``
creates a manual ``source_identite`` (logged), ``PatientStatus::updateStatus``
stores the patient with status PROV and manageSource stores it again with its
``source_identite_id`` (two 'store' entries). ``generateIPP`` then stores the
IPP as an idex (``id_sante400``, logged since the 2021 code). The medical
record (``CDossierMedical::dossierMedicalId``) is created with its own log
entry when the blood group or an allergy is first recorded, and each allergy
is a ``CAntecedent`` of type 'alle' with its log entry.

Columns the identity does not decide are filled the way this site's recent
rows are (seeders.sql.blend).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from canary import phones
from canary.model import Identity, Sex
from seeders.sql.blend import neighbour_fill
from seeders.mediboard import vigilance
from seeders.mediboard.host import MediboardHost
from seeders.mediboard.journal import KEYS as LOG_KEYS, Journal
from seeders.sql.rows import AUTOINCREMENT, Generated, Ref, RowPlan
from seeders.mediboard.soundex2 import soundex2

# Under this age Mediboard's civility is 'enf' (conf dPpatients CPatient adult_age).
ADULT_AGE = 15
_KEYS = {"patients": "patient_id", "id_sante400": "id_sante400_id", "patient_signature": "patient_signature_id",
         "source_identite": "source_identite_id", "dossier_medical": "dossier_medical_id",
         "antecedent": "antecedent_id", **LOG_KEYS}
_BLOOD = {"A": "A", "B": "B", "AB": "AB", "O": "O"}
# Timestamps Mediboard rewrites (last_update when the idex is bound again): not compared.
UNCHECKED = {"id_sante400": frozenset({"last_update"})}


@dataclass(frozen=True, slots=True)
class Plant:
    """What this plant needs beside the identity, read just before the insert."""

    now: datetime
    ipp: str | None
    medecin_id: int | None


def build_rows(identity: Identity, host: MediboardHost, plant: Plant, tables: dict[str, sa.Table],
               allergies: bool) -> list[RowPlan]:
    rows: list[RowPlan] = []

    def add(table: str, values: dict[str, Any], alias: str, refs: dict[str, Ref] | None = None) -> None:
        key = _KEYS[table]
        rows.append(RowPlan(table, (key,), _only(tables[table], values), generated={key: Generated(AUTOINCREMENT)},
                            refs=refs or {}, alias=alias, unchecked=UNCHECKED.get(table, frozenset())))

    journal = Journal(host, plant.now, add)

    def log(alias: str, object_class: str) -> None:
        journal.create(alias, _KEYS[_TABLE_OF[object_class]], object_class)

    schema = host.schema
    patient = _patient_values(identity, host, plant, tables["patients"])
    add("patients", patient, "patients")
    log("patients", "CPatient")
    if schema.signatures:
        # CPatientSignature::addPatientSignature (not logged): the used name, then the birth name if it differs.
        names = [patient["nom"]] + ([patient["nom_jeune_fille"]] if patient.get("nom_jeune_fille") not in
                                    (None, patient["nom"]) else [])
        for n, nom in enumerate(names):
            add("patient_signature", {"signature": vigilance.signature(nom, patient["prenom"], patient["naissance"])},
                f"signature_{n}", {"patient_id": Ref("patients", "patient_id")})
    if schema.sources:
        add("source_identite", _source_values(patient, plant), "source_identite",
            {"patient_id": Ref("patients", "patient_id")})
        log("source_identite", "CSourceIdentite")
        # PatientStatus::updateStatus stores status PROV, then manageSource binds the source: two stores.
        journal.store("patients", "patient_id", "CPatient", {"status": None})
        journal.store("patients", "patient_id", "CPatient", {"source_identite_id": None})
    if host.ipp_tag and plant.ipp:
        idex = {"object_class": "CPatient", "tag": host.ipp_tag, "id400": plant.ipp, "last_update": plant.now}
        if "datetime_create" in tables["id_sante400"].c:
            idex["datetime_create"] = plant.now  # CIdSante400::store on creation (dPsante400 0.29)
        add("id_sante400", idex, "ipp", {"object_id": Ref("patients", "patient_id")})
        if schema.idex_logged:
            log("ipp", "CIdSante400")

    group, rhesus = _blood(identity.blood_group)
    dossier = {**neighbour_fill(host.dossiers, tables["dossier_medical"],
                                skip={"object_id", "object_class", "groupe_sanguin", "rhesus"}),
               "object_class": "CPatient", "groupe_sanguin": group, "rhesus": rhesus}
    add("dossier_medical", dossier, "dossier_medical", {"object_id": Ref("patients", "patient_id")})
    log("dossier_medical", "CDossierMedical")

    if allergies:
        for n, allergy in enumerate(identity.allergies):
            alias = f"antecedent_{n}"
            filled = neighbour_fill(host.allergies, tables["antecedent"],
                                    skip={"dossier_medical_id", "type", "rques", "owner_id", "creation_date"})
            add("antecedent", {"annule": "0", "date": None, "appareil": None, **filled, "type": "alle",
                               "rques": allergy, "owner_id": host.user_id, "creation_date": plant.now},
                alias, {"dossier_medical_id": Ref("dossier_medical", "dossier_medical_id")})
            log(alias, "CAntecedent")
    return rows


_TABLE_OF = {"CPatient": "patients", "CSourceIdentite": "source_identite", "CIdSante400": "id_sante400",
             "CDossierMedical": "dossier_medical", "CAntecedent": "antecedent"}
# Source traits CSourceIdentite::manageSource copies from the patient (TRAITS_STRICTS_REFERENCE).
_TRAITS = {"nom_naissance": "nom_jeune_fille", "prenom_naissance": "prenom", "prenoms": "prenoms",
           "date_naissance": "naissance", "sexe": "sexe", "pays_naissance_insee": "pays_naissance_insee",
           "commune_naissance_insee": "commune_naissance_insee", "cp_naissance": "cp_naissance"}


def _patient_values(identity: Identity, host: MediboardHost, plant: Plant, table: sa.Table) -> dict[str, Any]:
    habits, schema, mode = host.patients, host.schema, host.vigilance
    sexe = "m" if identity.sex is Sex.MALE else "f"
    nom = vigilance.apply_mode(identity.last_name, firstname=False, mode=mode)
    birth = vigilance.apply_mode(identity.birth_name, firstname=False, mode=mode)
    prenoms = [vigilance.apply_mode(p, firstname=True, mode=mode) for p in identity.first_names]
    # The birth name is recorded when it differs, or when the site always records it for this sex;
    # since 4.33 (2021 code) updatePlainFields copies nom into an empty nom_jeune_fille.
    share = habits.filled_share_where("nom_jeune_fille", {"sexe": sexe})
    always = schema.prenoms or (share is not None and share >= 0.5)
    nom_jf = birth if birth != nom or always else None
    fmt = habits["naissance"].date_format or "%Y-%m-%d"
    values: dict[str, Any] = {
        "nom": nom,
        "nom_jeune_fille": nom_jf,
        "prenom": prenoms[0],
        "nom_soundex2": soundex2(nom, host.soundex_accents),
        "prenom_soundex2": soundex2(prenoms[0], host.soundex_accents),
        "nomjf_soundex2": soundex2(nom_jf, host.soundex_accents) if nom_jf else None,
        "naissance": identity.birth_date.strftime(fmt),
        "sexe": sexe,
        "civilite": _civilite(identity.birth_date, plant.now.date(), sexe),
        "adresse": "\n".join(x for x in (identity.address.line1, identity.address.line2) if x),
        "cp": identity.address.postcode,
        "ville": identity.address.city.upper() if habits.upper("ville", default=True) else identity.address.city,
        "email": identity.email,
        "matricule": identity.nir,
        "medecin_traitant": plant.medecin_id,
    }
    if schema.prenoms:
        values["prenoms"] = vigilance.apply_mode_prenoms(identity.first_names, mode)
        # The form's "prénom usuel": written when the site's patients have it.
        usual = habits.filled_share_where("prenom_usuel", {})
        values["prenom_usuel"] = prenoms[0] if usual is not None and usual >= 0.5 else habits.empty_value(
            "prenom_usuel", None)
    else:
        for n, column in enumerate(("prenom_2", "prenom_3", "prenom_4"), start=1):
            values[column] = prenoms[n] if n < len(prenoms) else habits.empty_value(column, None)
    if schema.creator:
        values["creator_id"], values["creation_date"] = host.user_id, plant.now
    if schema.sources:
        values["status"] = "PROV"  # PatientStatus::getStatus: a manual source without a high-trust proof
        values["source_identite_id"] = None  # bound once the source exists (seeder.plant)
    values.update(_phones(identity, host))
    skip = set(values) | {"patient_id", "deces", "patient_link_id"}
    return {**neighbour_fill(habits, table, skip=skip), **values}


def _source_values(patient: dict[str, Any], plant: Plant) -> dict[str, Any]:
    """CSourceIdentite::manageSource: a manual source with the patient's strict traits, from today."""
    values = {"active": "1", "mode_obtention": "manuel", "debut": plant.now.date()}
    for trait, column in _TRAITS.items():
        if patient.get(column):
            values[trait] = patient[column]
    return values


def _phones(identity: Identity, host: MediboardHost) -> dict[str, Any]:
    """tel is the home line, tel2 the mobile ("Portable"), written as the site writes them."""
    numbers = [n for n in (identity.phone, identity.phone2) if n]
    mobiles = [n for n in numbers if phones.kind(n) == "mobile"]
    others = [n for n in numbers if n not in mobiles]
    slots = {"tel2": mobiles[0] if mobiles else None, "tel": others[0] if others else None}
    if slots["tel"] is None and len(mobiles) > 1:
        slots["tel"] = mobiles[1]
    out = {}
    for column, number in slots.items():
        style = host.patients[column].phone_style or host.patients["tel"].phone_style or "national"
        out[column] = phones.formats(number)[style] if number else host.patients.empty_value(column, None)
    return out


def _blood(group: str) -> tuple[str, str]:
    """'AB-' -> ('AB', 'NEG'), as dossier_medical.groupe_sanguin / rhesus hold it."""
    letters, sign = group[:-1], group[-1]
    return _BLOOD.get(letters, "?"), {"+": "POS", "-": "NEG"}.get(sign, "?")


def _civilite(born: date, today: date, sexe: str) -> str:
    """As updatePlainFields guesses it: 'enf' under the adult age, else by sex."""
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return "enf" if age < ADULT_AGE else ("m" if sexe == "m" else "mme")


def _only(table: sa.Table, values: dict[str, Any]) -> dict[str, Any]:
    """The values whose column exists in this Mediboard version."""
    return {k: v for k, v in values.items() if k in table.c}
