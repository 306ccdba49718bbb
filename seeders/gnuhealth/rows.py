"""The rows GNU Health writes for one new patient, as ``RowPlan`` values.

GNU Health creates a patient in two saves. The party form (Party > Parties,
"Person" and "Patient" ticked) inserts ``party_party``; its ``create()``
adds the official ``gnuhealth_person_name`` from the given and family names,
and the form's one-to-many fields add the contact mechanisms, the
alternative IDs and the address, all in one transaction (one create_date).
The patient form then inserts ``gnuhealth_patient`` a little later. The
order here is that order; ``write_uid``/``write_date`` stay NULL as they do
until someone edits the record.

Pure functions: what needs the database (a free PUID, the next party code,
the host's conventions) is decided by the seeder and passed in.
"""

from __future__ import annotations

import random
import string
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from canary.identity import nir as nirs
from canary.model import Identity, Sex
from canary.phones import formats, kind
from seeders.gnuhealth.host import Conventions
from seeders.sql.rows import AUTOINCREMENT, Generated, Ref, RowPlan
from seeders.common.transforms import strip_accents

_KEY = ("id",)
ID_KEY = Generated(AUTOINCREMENT)
# The patient form is saved after the party form: seconds to minutes later.
_PATIENT_FORM_DELAY = (20, 180)


@dataclass(frozen=True)
class Settings:
    """Per-source choices, resolved from the options and the database at open()."""

    create_uid: int
    country_id: int | None
    fed_country: str | None
    alt_id_type: str
    subdivisions: dict[str, int]  # "FR-35" -> country_subdivision id
    columns: dict[str, frozenset[str]]  # table -> its columns (optional ones vary by version)


@dataclass(frozen=True)
class Drawn:
    """What is drawn per patient: unique or random values the seeder chose."""

    puid: str
    code: str | None  # None while planning when a database sequence numbers party codes
    doctor: int | None
    now: datetime  # UTC, as Tryton stores datetimes
    patient_delay: timedelta


def new_puid(rnd: random.Random) -> str:
    """A PUID as GNU Health's generate_puid() makes one: three letters, three digits, three letters."""
    letters, digits = string.ascii_uppercase, string.digits
    return "".join(rnd.choice(letters if i < 3 or i > 5 else digits) for i in range(9))


def new_code(conv: Conventions) -> str:
    """A party code as GNU Health's create() writes it: a uuid4, then the institution name."""
    code = str(uuid.uuid4())
    return f"{code}-{conv.code_suffix}" if conv.code_style == "uuid-suffix" and conv.code_suffix else code


def draw(conv: Conventions, rnd: random.Random, now: datetime, *, puid: str, code: str | None,
         doctor: int | None) -> Drawn:
    return Drawn(puid=puid, code=code, doctor=doctor, now=now,
                 patient_delay=timedelta(seconds=rnd.randint(*_PATIENT_FORM_DELAY)))


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
    created = {"create_uid": settings.create_uid, "create_date": drawn.now}
    party_ref = {"party": Ref("party", "id")}

    def row(table: str, alias: str, own: dict[str, Any], refs: dict[str, Ref], stamp=created) -> RowPlan:
        values = {k: v for k, v in conv.constants.get(table, {}).items() if k in cols[table]}
        values.update(own)
        values.update(stamp)
        return RowPlan(table=table, key=_KEY, values=values, generated={"id": ID_KEY}, refs=refs, alias=alias)

    lastname, given = family_name(identity.birth_name, conv), given_name(identity, conv)
    rows = [row("party_party", "party", _party_values(identity, conv, settings, drawn, lastname, given), {})]
    rows.append(row("gnuhealth_person_name", "official_name",
                    {"use": "official", "family": lastname, "given": given}, party_ref))
    if identity.married_name_used:
        rows.append(row("gnuhealth_person_name", "usual_name",
                        {"use": "usual", "family": family_name(identity.last_name, conv), "given": given}, party_ref))
    for alias, e164 in (("phone", identity.phone), ("phone2", identity.phone2)):
        if e164:
            line = conv.mobile_type if kind(e164) == "mobile" else "phone"
            rows.append(row("party_contact_mechanism", alias,
                            _contact(cols, line, formats(e164)[conv.phone_style], e164), party_ref))
    rows.append(row("party_contact_mechanism", "email", _contact(cols, "email", identity.email, identity.email),
                    party_ref))
    if conv.puid_style != "nir":  # otherwise the NIR already is the PUID
        alt = {"code": nir_text(identity, conv), "alternative_id_type": settings.alt_id_type}
        if conv.alt_id_comment is not None:
            alt["comments"] = conv.alt_id_comment
        rows.append(row("gnuhealth_person_alternative_identification", "nir", alt, {"name": Ref("party", "id")}))
    rows.append(row("party_address", "address", _address_values(identity, conv, settings), party_ref))
    rows.append(row("gnuhealth_patient", "patient", _patient_values(identity, conv, cols, drawn),
                    {"name": Ref("party", "id")},
                    stamp={**created, "create_date": drawn.now + drawn.patient_delay}))
    return rows


def _party_values(identity: Identity, conv: Conventions, settings: Settings, drawn: Drawn,
                  lastname: str, given: str) -> dict[str, Any]:
    cols = settings.columns["party_party"]
    ref = nir_text(identity, conv) if conv.puid_style == "nir" else drawn.puid
    values: dict[str, Any] = {
        "code": drawn.code, "name": given, "lastname": lastname, "ref": ref,
        "dob": identity.birth_date, "gender": "m" if identity.sex is Sex.MALE else "f",
        "is_person": True, "is_patient": True, "active": True,
    }
    if settings.fed_country and "fed_country" in cols:
        values["fed_country"] = settings.fed_country
        if "federation_account" in cols and conv.fills("federation_account"):
            values["federation_account"] = settings.fed_country + ref
    if "alternative_identification" in cols and conv.puid_style != "nir":
        values["alternative_identification"] = True
    if "activation_date" in cols and conv.fills("activation_date"):
        values["activation_date"] = drawn.now.date()
    return {k: v for k, v in values.items() if k in cols}


def _contact(cols: dict[str, frozenset[str]], line: str, value: str, compact: str) -> dict[str, Any]:
    values = {"type": line, "value": value, "value_compact": compact}
    return {k: v for k, v in values.items() if k in cols["party_contact_mechanism"]}


def _address_values(identity: Identity, conv: Conventions, settings: Settings) -> dict[str, Any]:
    cols = settings.columns["party_address"]
    address = identity.address
    values: dict[str, Any] = {"city": address.city.upper() if conv.upper_city else address.city,
                              "country": settings.country_id}
    # Tryton 7 keeps the typed street in street_unstructured; before 5.x, two lines.
    street = "street_unstructured" if "street_unstructured" in cols else "street"
    if "streetbis" in cols:
        values.update({street: address.line1, "streetbis": address.line2 or None})
    else:
        values[street] = "\n".join(line for line in (address.line1, address.line2) if line)
    values["postal_code" if "postal_code" in cols else "zip"] = address.postcode
    subdivision = settings.subdivisions.get(f"FR-{address.departement}")
    if subdivision is not None and conv.fills("subdivision"):
        values["subdivision"] = subdivision
    return {k: v for k, v in values.items() if k in cols}


def _patient_values(identity: Identity, conv: Conventions, cols: dict[str, frozenset[str]],
                    drawn: Drawn) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if conv.fills("blood_type"):
        values["blood_type"], values["rh"] = blood(identity)
    if drawn.doctor is not None:
        values["primary_care_doctor"] = drawn.doctor
    if conv.fills("biological_sex"):
        values["biological_sex"] = "m" if identity.sex is Sex.MALE else "f"
    return {k: v for k, v in values.items() if k in cols["gnuhealth_patient"]}
