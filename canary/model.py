"""Domain types shared by every part of the system.

The data flow is: Identity (generated) -> Tokens (contact points we watch)
-> Seeder.plant (rows in a target database, described by a Placement)
-> Registry (which source holds which canary).

These are plain, immutable values: no I/O, no database sessions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date
from typing import Any

# Production OID of the INS-NIR (Identifiant National de Santé). Test and demo
# OIDs (…4.10, …4.11) would give a canary away to anyone who knows them.
INS_NIR_OID = "1.2.250.1.213.1.4.8"


class Sex(str, enum.Enum):
    MALE = "M"
    FEMALE = "F"


@dataclass(frozen=True, slots=True)
class Birthplace:
    """Where a person was born, as it was coded on the birth date.

    For a birth in France, ``insee_code`` is the commune's code valid at the
    birth date (arrondissement code for Paris, Lyon and Marseille) and
    ``departement`` the département code that was valid then (``20`` for
    Corsica before 1976). For a birth abroad, ``departement`` is ``99`` and
    ``insee_code`` is ``99`` + the INSEE country code (e.g. ``99352``).
    """

    insee_code: str
    name: str  # commune name, or country name when abroad
    departement: str
    country: str = "France"  # country name in French

    @property
    def abroad(self) -> bool:
        return self.departement == "99"


@dataclass(frozen=True, slots=True)
class Address:
    line1: str  # e.g. "12 rue des Tilleuls"
    postcode: str  # a real La Poste postcode of that commune
    city: str  # commune name, as La Poste writes it for that postcode
    insee_code: str  # commune (or arrondissement) INSEE code
    departement: str
    line2: str = ""  # e.g. "Bâtiment B", "Résidence les Pins"
    country: str = "France"


@dataclass(frozen=True, slots=True)
class Practitioner:
    """The treating general practitioner (médecin traitant)."""

    civility: str  # "Dr"
    first_name: str
    last_name: str
    rpps: str  # 11 digits, RPPS-style


@dataclass(frozen=True, slots=True)
class Identity:
    """One fake patient whose every field agrees with every other."""

    sex: Sex
    civility: str  # "M." or "Mme"
    first_names: tuple[str, ...]  # 1-3, the first is the usual one
    last_name: str  # nom d'usage (used name)
    birth_name: str  # nom de naissance; equals last_name unless married name used
    birth_date: date
    birthplace: Birthplace
    nir: str  # 15 characters: 13 + 2-digit key, e.g. "2840575115123" + "45"
    address: Address
    phone: str  # E.164, tracked (from our pool)
    phone2: str | None  # E.164, tracked (from our pool) or None
    email: str  # at one of our domains, lower case
    url_code: str  # unguessable access code embedded in portal_url
    portal_url: str  # full patient-portal link carrying url_code
    dns_label: str  # unguessable label under our DNS zone
    hostname: str  # dns_label + "." + zone
    portal_login: str
    portal_password: str
    blood_group: str  # "A+", "O-", ...
    allergies: tuple[str, ...]
    treatments: tuple[str, ...]  # INN drug names with dosage, e.g. "amlodipine 5 mg"
    gp: Practitioner
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def first_name(self) -> str:
        return self.first_names[0]

    @property
    def ins(self) -> str:
        """INS as exchanged in HL7/FHIR: the NIR under the production OID."""
        return self.nir

    @property
    def married_name_used(self) -> bool:
        return self.birth_name != self.last_name

    def to_dict(self) -> dict[str, Any]:
        # Written out by hand: dataclasses.asdict deep-copies recursively and
        # made `canary generate --json` of 100,000 identities ~13 s slower.
        bp, ad, gp = self.birthplace, self.address, self.gp
        return {
            "sex": self.sex.value,
            "civility": self.civility,
            "first_names": list(self.first_names),
            "last_name": self.last_name,
            "birth_name": self.birth_name,
            "birth_date": self.birth_date.isoformat(),
            "birthplace": {"insee_code": bp.insee_code, "name": bp.name, "departement": bp.departement,
                           "country": bp.country},
            "nir": self.nir,
            "address": {"line1": ad.line1, "postcode": ad.postcode, "city": ad.city, "insee_code": ad.insee_code,
                        "departement": ad.departement, "line2": ad.line2, "country": ad.country},
            "phone": self.phone,
            "phone2": self.phone2,
            "email": self.email,
            "url_code": self.url_code,
            "portal_url": self.portal_url,
            "dns_label": self.dns_label,
            "hostname": self.hostname,
            "portal_login": self.portal_login,
            "portal_password": self.portal_password,
            "blood_group": self.blood_group,
            "allergies": list(self.allergies),
            "treatments": list(self.treatments),
            "gp": {"civility": gp.civility, "first_name": gp.first_name, "last_name": gp.last_name, "rpps": gp.rpps},
            "extra": dict(self.extra),
            "ins_oid": INS_NIR_OID,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Identity":
        return cls(
            sex=Sex(data["sex"]),
            civility=data["civility"],
            first_names=tuple(data["first_names"]),
            last_name=data["last_name"],
            birth_name=data["birth_name"],
            birth_date=date.fromisoformat(data["birth_date"]),
            birthplace=Birthplace(**data["birthplace"]),
            nir=data["nir"],
            address=Address(**data["address"]),
            phone=data["phone"],
            phone2=data.get("phone2"),
            email=data["email"],
            url_code=data["url_code"],
            portal_url=data["portal_url"],
            dns_label=data["dns_label"],
            hostname=data["hostname"],
            portal_login=data["portal_login"],
            portal_password=data["portal_password"],
            blood_group=data["blood_group"],
            allergies=tuple(data["allergies"]),
            treatments=tuple(data["treatments"]),
            gp=Practitioner(**data["gp"]),
            extra=dict(data.get("extra") or {}),
        )


class TokenKind(str, enum.Enum):
    EMAIL = "email"
    PHONE = "phone"
    URL_CODE = "url_code"
    DNS_LABEL = "dns_label"
    PORTAL_LOGIN = "portal_login"
    NIR = "nir"


@dataclass(frozen=True, slots=True)
class Token:
    """A contact point we own and watch, normalised for lookup."""

    kind: TokenKind
    value: str  # normalised: lower case; phones in E.164; NIR 15 digits/2A/2B


class CanaryStatus(str, enum.Enum):
    PLANNED = "planned"  # recorded, target insert not yet confirmed
    PLANTED = "planted"  # present in the target
    MISSING = "missing"  # verify found it deleted or altered
    RETIRED = "retired"  # removed on purpose (or never reached the target)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a seeder put one canary: enough to find, check and remove it.

    ``rows`` lists every row the seeder inserted, in insertion order, each as
    ``{"table": ..., "key": {pk column: value}, "values": {column: value}}``
    (``values`` are what was written, JSON-friendly, used by verify).
    Seeders that do not write rows (FHIR, HL7) keep their own references in
    ``extra``.
    """

    rows: tuple[dict[str, Any], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": list(self.rows), "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Placement":
        data = data or {}
        return cls(rows=tuple(data.get("rows") or ()), extra=dict(data.get("extra") or {}))


class VerifyState(str, enum.Enum):
    OK = "ok"
    MISSING = "missing"  # a planted row is gone
    ALTERED = "altered"  # a planted row is there but its values changed


@dataclass(frozen=True, slots=True)
class VerifyResult:
    state: VerifyState
    details: tuple[str, ...] = ()  # human-readable, e.g. "patients.tel changed"
    # Whether the application's own patient search returns the canary: None when the seeder
    # cannot ask (most cannot), False when the rows are intact but the search misses them.
    searchable: bool | None = None


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A target database as the registry knows it (never with a password)."""

    name: str
    seeder: str
    url_env: str | None = None
    url: str | None = None  # only a URL without password may be stored
    mapping: str | None = None  # path to a mapping file (generic SQL seeder)
    options: dict[str, Any] = field(default_factory=dict)
    establishment: str | None = None
    tenant: str | None = None
    alert_to: tuple[str, ...] = ()
    catchment: tuple[str, ...] = ()  # département codes; empty = whole France
