"""The rows GNU Health writes for one new patient, as ``RowPlan`` values.

A patient is one save of the party form (Party > Parties, *Person* and
*Patient* ticked), one transaction, so every row shares one ``create_date``
(Tryton writes SQL ``CURRENT_TIMESTAMP``, the transaction start: trytond
``model/modelsql.py`` ``create``). In it GNU Health's ``Party.create``
(health.py, 5.0.6 l.681-791, 4.4.1 l.670-780) adds the PUID, the federation
account, the party code, the official ``gnuhealth_person_name`` and, because
``create_target`` defaults to true, the ``gnuhealth_patient`` row; Tryton
adds the ``party_party_lang`` row (``Party.lang`` MultiValue), the form's
address, contact mechanisms (each with a ``party_contact_mechanism_language``
row, as the client sends the ``language`` column of their list) and
alternative IDs. ``ContactMechanism.create`` saves its rows a second time to
format their values (trytond_party ``contact_mechanism.py``
``_format_values``), so they have ``write_date``/``write_uid`` = create.

A usual (married) name, a blood group or a GP cannot be saved with the
party form (``Party.create`` replaces the person names; the patient row is
created empty): they come from a later edit, so such a patient was created
a little earlier and edited now (``write_date``/``write_uid``).

Pure functions: what needs the database (a free PUID, the next party code,
the host's conventions, the site setup) is decided by the seeder.
"""

from __future__ import annotations

import random
import string
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from canary.identity import nir as nirs
from canary.model import Identity, Sex
from canary.phones import formats, kind
from seeders.gnuhealth.host import Conventions
from seeders.gnuhealth.site import Site, Version
from seeders.sql.rows import AUTOINCREMENT, Generated, Ref, RowPlan
from seeders.common.transforms import strip_accents

_KEY = ("id",)
ID_KEY = Generated(AUTOINCREMENT)
# A later edit (usual name, blood group, GP) comes seconds to minutes after the creation.
_EDIT_DELAY = (20, 180)
# Booleans Tryton writes true for a new patient (default_active of DeactivableMixin and
# PatientData, Party.default_create_target); every other boolean is written false, as the
# client sends it (gnuhealth-client field.py BooleanField) and the column default says.
_TRUE = {"party_party": ("active", "create_target", "is_person", "is_patient"),
         "party_address": ("active",), "party_contact_mechanism": ("active",), "gnuhealth_patient": ("active",)}


@dataclass(frozen=True)
class Settings:
    """Per-source choices, resolved from the options and the database at open()."""

    create_uid: int
    country_id: int | None
    fed_country: str | None  # None: no federation country, the account starts with XXX
    alt_id_type: str
    subdivisions: dict[str, int]  # "FR-35" -> country_subdivision id
    columns: dict[str, frozenset[str]]  # table -> its columns (optional ones vary by version)
    version: Version
    site: Site
    booleans: dict[str, frozenset[str]] = field(default_factory=dict)  # table -> its boolean columns


@dataclass(frozen=True)
class Drawn:
    """What is drawn per patient: unique or random values the seeder chose."""

    puid: str  # generate_puid(): the PUID, and the federation account's tail even when ref is the NIR
    code: str | None  # None while planning when a database sequence numbers party codes
    doctor: int | None
    now: datetime  # the database's LOCALTIMESTAMP, as Tryton's CURRENT_TIMESTAMP stores it
    edit_delay: timedelta


def new_puid(rnd: random.Random) -> str:
    """A PUID as GNU Health's generate_puid() makes one: three letters, three digits, three letters."""
    letters, digits = string.ascii_uppercase, string.digits
    return "".join(rnd.choice(letters if i < 3 or i > 5 else digits) for i in range(9))


def new_code(conv: Conventions, site: Site, given: str) -> str:
    """A party code as Party.create writes it: a uuid4, '-', the company's rec_name or else the given name."""
    code = str(uuid.uuid4())
    if conv.code_style == "uuid":
        return code
    # What GNU Health writes now (the user's company) comes before what older patients show.
    return f"{code}-{site.company_name or conv.code_suffix or given}"


def draw(conv: Conventions, rnd: random.Random, now: datetime, *, puid: str, code: str | None,
         doctor: int | None) -> Drawn:
    return Drawn(puid=puid, code=code, doctor=doctor, now=now,
                 edit_delay=timedelta(seconds=rnd.randint(*_EDIT_DELAY)))


def family_name(name: str, conv: Conventions) -> str:
    if not conv.upper_lastname:
        return name
    return strip_accents(name).upper() if conv.plain_lastname else name.upper()


def given_name(identity: Identity, conv: Conventions) -> str:
    return identity.first_name.upper() if conv.upper_given else identity.first_name


def nir_text(identity: Identity, conv: Conventions) -> str:
    return nirs.spaced(identity.nir) if conv.nir_spaced else identity.nir


def blood(identity: Identity) -> tuple[str, str]:
    """("AB", "+") from "AB+": GNU Health keeps the group and the Rh factor apart."""
    return identity.blood_group[:-1], identity.blood_group[-1]


def patient_rows(identity: Identity, conv: Conventions, settings: Settings, drawn: Drawn) -> list[RowPlan]:
    """Every row of one patient, in the order GNU Health inserts them."""
    cols = settings.columns
    patient_edit = _patient_values(identity, conv, cols, drawn)
    usual = identity.married_name_used
    edited = bool(patient_edit) or usual
    created_at = drawn.now - drawn.edit_delay if edited else drawn.now
    created = {"create_uid": settings.create_uid, "create_date": created_at}
    edit = {"write_uid": settings.create_uid, "write_date": drawn.now}
    party_ref = {"party": Ref("party", "id")}
    link_ref = {settings.version.link: Ref("party", "id")}
    company = settings.site.company_id

    def row(table: str, alias: str, own: dict[str, Any], refs: dict[str, Ref], stamp=created) -> RowPlan:
        values: dict[str, Any] = {c: False for c in settings.booleans.get(table, ())}
        values.update({c: True for c in _TRUE.get(table, ()) if c in cols[table]})
        values.update({c: "" for c in settings.version.empty_text.get(table, ())
                       if c in cols[table] and (table, c) not in conv.null_text})
        values.update({k: v for k, v in conv.constants.get(table, {}).items() if k in cols[table]})
        values.update(own)
        values.update(stamp)
        return RowPlan(table=table, key=_KEY, values=values, generated={"id": ID_KEY}, refs=refs, alias=alias)

    lastname, given = family_name(identity.birth_name, conv), given_name(identity, conv)
    party = _party_values(identity, conv, settings, drawn, created_at, lastname, given)
    rows = [row("party_party", "party", party, {}, stamp={**created, **edit} if usual else created)]
    rows.append(row("party_party_lang", "lang", {"company": company}, party_ref))
    rows.append(row("gnuhealth_person_name", "official_name",
                    {"use": "official", "family": lastname, "given": given}, party_ref))
    rows.append(row("party_address", "address", _address_values(identity, conv, settings), party_ref))
    contacts = []
    for alias, e164 in (("phone", identity.phone), ("phone2", identity.phone2)):
        if e164:
            line = conv.mobile_type if kind(e164) == "mobile" else "phone"
            shown = formats(e164)[conv.phone_style]
            contacts.append((alias, _contact(cols, line, shown, e164 if conv.compact_e164 else shown)))
    contacts.append(("email", _contact(cols, "email", identity.email, identity.email)))
    contact_stamp = {**created, "write_uid": created["create_uid"], "write_date": created["create_date"]}
    for alias, values in contacts:
        rows.append(row("party_contact_mechanism", alias, values, party_ref, stamp=contact_stamp))
        rows.append(row("party_contact_mechanism_language", f"{alias}_language", {"company": company},
                        {"contact_mechanism": Ref(alias, "id")}))
    if conv.puid_style != "nir":  # otherwise the NIR already is the PUID
        alt = {"code": nir_text(identity, conv), "alternative_id_type": settings.alt_id_type}
        if conv.alt_id_comment is not None:
            alt["comments"] = conv.alt_id_comment
        rows.append(row("gnuhealth_person_alternative_identification", "nir", alt, link_ref))
    rows.append(row("gnuhealth_patient", "patient", patient_edit, link_ref,
                    stamp={**created, **edit} if patient_edit else created))
    if usual:
        rows.append(row("gnuhealth_person_name", "usual_name",
                        {"use": "usual", "family": family_name(identity.last_name, conv), "given": given},
                        party_ref, stamp={"create_uid": settings.create_uid, "create_date": drawn.now}))
    return [plan for plan in rows if plan.table in cols]


def _party_values(identity: Identity, conv: Conventions, settings: Settings, drawn: Drawn, created_at: datetime,
                  lastname: str, given: str) -> dict[str, Any]:
    cols = settings.columns["party_party"]
    ref = nir_text(identity, conv) if conv.puid_style == "nir" else drawn.puid
    values: dict[str, Any] = {
        "code": drawn.code, "name": given, "lastname": lastname, "ref": ref,
        "dob": identity.birth_date, "gender": "m" if identity.sex is Sex.MALE else "f",
    }
    # Party.default_fed_country; unset, the client sends '' (or the host's rows show NULL). Never a
    # value copied from older patients: the federation account below is built from this one.
    values["fed_country"] = settings.fed_country or (None if ("party_party", "fed_country") in conv.null_text
                                                     else "")
    if conv.fills("federation_account"):
        # Party.create: (fed_country or "XXX") + the PUID it drew, even when the clerk typed a ref.
        values["federation_account"] = (settings.fed_country or "XXX") + drawn.puid
    if settings.site.fed_country_id is not None:  # default_citizenship / default_residence
        values["citizenship"] = values["residence"] = settings.site.fed_country_id
    values["alternative_identification"] = conv.puid_style != "nir"
    if conv.fills("activation_date"):
        values["activation_date"] = created_at.date()  # default_activation_date: date.today()
    return {k: v for k, v in values.items() if k in cols}


def _contact(cols: dict[str, frozenset[str]], line: str, value: str, compact: str) -> dict[str, Any]:
    values = {"type": line, "value": value, "value_compact": compact}
    return {k: v for k, v in values.items() if k in cols["party_contact_mechanism"]}


def _address_values(identity: Identity, conv: Conventions, settings: Settings) -> dict[str, Any]:
    cols = settings.columns["party_address"]
    address = identity.address
    values: dict[str, Any] = {"city": address.city.upper() if conv.upper_city else address.city,
                              "country": settings.country_id,
                              # Tryton 6.0 and 7.0: one text street, lines joined by a line break.
                              "street": "\n".join(line for line in (address.line1, address.line2) if line),
                              "postal_code": address.postcode}
    subdivision = subdivision_id(settings.subdivisions, address.departement)
    if subdivision is not None and conv.fills("subdivision"):
        values["subdivision"] = subdivision
    return {k: v for k, v in values.items() if k in cols}


# Départements whose ISO 3166-2 code is not FR-<number> in the pycountry the site imported its countries
# from (trytond_import_countries): Paris is FR-75C since pycountry 22, the overseas départements were
# FR-GP, FR-MQ, FR-GF, FR-RE, FR-YT before (GNU Health 4.4 needs pycountry 20.7).
_OTHER_CODES = {"75": ("75C",), "971": ("GP",), "972": ("MQ",), "973": ("GF",), "974": ("RE",), "976": ("YT",)}


def subdivision_id(subdivisions: dict[str, int], departement: str) -> int | None:
    """The country_subdivision id a clerk picks for the département, whichever ISO code the site has."""
    for code in (departement, *_OTHER_CODES.get(departement, ())):
        if f"FR-{code}" in subdivisions:
            return subdivisions[f"FR-{code}"]
    return None


def _patient_values(identity: Identity, conv: Conventions, cols: dict[str, frozenset[str]],
                    drawn: Drawn) -> dict[str, Any]:
    """What a later patient-form edit fills in; empty when the host's patients are never edited so."""
    values: dict[str, Any] = {}
    if conv.fills("blood_type"):
        values["blood_type"], values["rh"] = blood(identity)
    if drawn.doctor is not None:
        values["primary_care_doctor"] = drawn.doctor
    if conv.fills("biological_sex"):
        values["biological_sex"] = "m" if identity.sex is Sex.MALE else "f"
    return {k: v for k, v in values.items() if k in cols["gnuhealth_patient"]}
