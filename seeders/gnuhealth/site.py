"""Which GNU Health version a database is, and the site setup new patients take their defaults from.

The version is read from the schema, because Tryton's ``ir_module`` table
keeps no version number (trytond 6.0 and 7.0: id, name, state only):

* **5.0** (Tryton 7.0): ``gnuhealth_patient.party`` and
  ``gnuhealth_person_alternative_identification.party`` link to the party
  (health.py ``PatientData.party``; ``AlternativePersonID.__register__``
  "Migration from 4.4: rename name to party").
* **4.4** (Tryton 6.0): the same links are called ``name``.

Anything else (GNU Health before 4.0 still had ``party_address.zip``, renamed
``postal_code`` by trytond_party 6.0 ``address.py`` "Migration from 5.8"; a
database where the ``health`` module is not activated) is refused in one line.

The site setup is what ``Party.default_*`` and ``Party.create`` read
(health.py, 5.0.6 l.551-729): the federation country configured under
Health > Configuration (``gnuhealth_federation_country_config`` id 1) and the
company of the user who saves the form (``company.rec_name`` in the context).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seeders.sql.target import SqlTarget

SUPPORTED = ("4.4", "5.0")


@dataclass(frozen=True)
class Version:
    """What differs between the supported GNU Health versions, for the seeder."""

    name: str  # "5.0" | "4.4"
    link: str  # the column of gnuhealth_patient and of the alternative IDs pointing at the party
    # Char columns the GTK client sends as '' (CharField.get: value or '') because the party form
    # shows them; the others of these tables stay NULL. 4.4's address form also shows relationship.
    empty_text: dict[str, tuple[str, ...]]


_EMPTY_TEXT = {
    "party_party": ("fed_country",),  # when no federation country is configured
    "party_address": ("name", "party_name"),
    "party_contact_mechanism": ("name",),
    "gnuhealth_person_alternative_identification": ("comments", "other_alternative_id_type"),
}
V50 = Version("5.0", "party", _EMPTY_TEXT)
V44 = Version("4.4", "name", {**_EMPTY_TEXT, "party_address": ("name", "party_name", "relationship")})


class UnsupportedVersion(Exception):
    """The schema is not one of the supported GNU Health versions; the message says why."""


def detect(target: SqlTarget) -> Version:
    """The GNU Health version of the database, or UnsupportedVersion with a one-line reason."""
    supported = f"supported: GNU Health {' and '.join(SUPPORTED)}"
    module = target.table("ir_module")
    if module is not None:
        rows = target.find("ir_module", {"name": "health"}, limit=1)
        if not rows or rows[0].get("state") != "activated":
            raise UnsupportedVersion(f"the GNU Health module 'health' is not activated in ir_module ({supported})")
    address = target.table("party_address")
    if address is not None and "zip" in address.c and "postal_code" not in address.c:
        raise UnsupportedVersion(f"party_address has zip, not postal_code: GNU Health before 4.0 ({supported})")
    patient = target.table("gnuhealth_patient")
    columns = set(patient.c.keys()) if patient is not None else set()
    if "party" in columns:
        return V50
    if "name" in columns:
        return V44
    raise UnsupportedVersion(f"gnuhealth_patient has neither party (5.0) nor name (4.4) ({supported})")


@dataclass(frozen=True)
class Site:
    """What the site's setup gives a party saved by one user."""

    fed_country: str | None  # ISO alpha-3 of the federation country (Health > Configuration), or None
    fed_country_id: int | None  # its country_country id: default citizenship and residence
    company_id: int | None  # the user's current company (res_user.company)
    company_name: str | None  # its rec_name, the suffix of party codes


def read_site(target: SqlTarget, uid: int) -> Site:
    fed_code, fed_id = _federation_country(target)
    company_id, company_name = _company(target, uid)
    return Site(fed_code, fed_id, company_id, company_name)


def _federation_country(target: SqlTarget) -> tuple[str | None, int | None]:
    # FederationCountryConfig(1).code is country.code3 (health.py l.332).
    if target.table("gnuhealth_federation_country_config") is None:
        return None, None
    config = target.find("gnuhealth_federation_country_config", {"id": 1}, limit=1)
    if not config or config[0].get("country") is None:
        return None, None
    country = target.find("country_country", {"id": config[0]["country"]}, limit=1)
    return (country[0].get("code3") or None, country[0]["id"]) if country else (None, None)


def _company(target: SqlTarget, uid: int) -> tuple[int | None, str | None]:
    # res/user.py _get_preferences puts company.rec_name in the context; a company's
    # rec_name is its party's (lastname, name for a person; name otherwise).
    user = target.table("res_user")
    if user is None or "company" not in user.c or target.table("company_company") is None:
        return None, None
    rows = target.find("res_user", {"id": uid}, limit=1)
    company_id = rows[0].get("company") if rows else None
    if company_id is None:
        return None, None
    company = target.find("company_company", {"id": company_id}, limit=1)
    party = target.find("party_party", {"id": company[0]["party"]}, limit=1) if company else []
    return company_id, _rec_name(party[0]) if party else None


def _rec_name(party: dict[str, Any]) -> str | None:
    if party.get("lastname"):
        return f"{party['lastname']}, {party.get('name') or ''}"
    return party.get("name")
