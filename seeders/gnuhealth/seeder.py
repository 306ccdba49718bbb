"""The GNU Health seeder: patients written into a GNU Health HMIS database (Tryton tables).

A patient is what GNU Health's party and patient forms create: ``party_party``
(a person and a patient, with a PUID), its official name, its contact
mechanisms, the NIR as an alternative ID, its address, and ``gnuhealth_patient``
(see seeders/gnuhealth/rows.py for the columns). Everything goes in one
transaction; retire deletes exactly those rows. How the rows are written
(case of names, phone format, optional fields, creator) follows the database's
latest patients (seeders/gnuhealth/host.py).
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timezone
from typing import Any

from canary.identity import nir as nirs
from canary.errors import ConfigError, MappingError, SourceError
from canary.model import Identity, Placement
from canary.phones import to_e164
from seeders.gnuhealth import host
from seeders.gnuhealth import rows as build
from seeders.sql.appseeder import AppSeeder
from seeders.sql.apptarget import AppTarget
from seeders.base import SeederOption
from seeders.sql.fields import ANY
from seeders.sql.rows import RowPlan
from seeders.sql.target import Problem, SqlTarget
from seeders.sql.values import to_json

TABLES = ("party_party", "gnuhealth_person_name", "party_contact_mechanism",
          "gnuhealth_person_alternative_identification", "party_address", "gnuhealth_patient")
# Columns every supported GNU Health version has; the others are written when present.
REQUIRED_COLUMNS = {
    "party_party": ("code", "name", "lastname", "ref", "dob", "gender", "is_person", "is_patient", "active"),
    "gnuhealth_person_name": ("party", "use", "family", "given"),
    "party_contact_mechanism": ("party", "type", "value"),
    "gnuhealth_person_alternative_identification": ("name", "code", "alternative_id_type"),
    "party_address": ("party", "city", "country"),
    "gnuhealth_patient": ("name",),
}
# Tryton's stock admin user: the creator when the database has no patient to learn from.
STOCK_ADMIN_UID = 1
_PUID_ATTEMPTS = 50


class GnuHealthSeeder(AppSeeder):
    name = "gnuhealth"
    summary = "GNU Health HMIS on PostgreSQL (Tryton tables): party, names, contacts, NIR, address, patient."
    application = "GNU Health"
    preloaded = TABLES
    written_tables = TABLES
    parts = ("conv", "settings")
    conv: host.Conventions | None
    settings: build.Settings | None
    options = (
        SeederOption("create_uid", "res_user id recorded as creator of the rows; 'auto': the user who "
                     "created most of the latest patients, else 1 (admin)", default="auto"),
        SeederOption("country", "ISO 3166-1 alpha-2 code of the address country, looked up in "
                     "country_country", default="FR"),
        SeederOption("fed_country", "ISO 3166-1 alpha-3 prefix of the federation account; 'auto': as the "
                     "latest patients, else the country's alpha-3 code", default="auto"),
        SeederOption("alternative_id_type", "alternative_id_type of the row holding the NIR; 'auto': the type "
                     "the latest patients' NIRs have, else 'other'", default="auto"),
        SeederOption("primary_care_doctor", "gnuhealth_healthprofessional id of the GP, 'none', or 'auto': one "
                     "of the GPs of the latest patients, when most of them have one", default="auto"),
    )

    def __init__(self, source, url: str) -> None:
        super().__init__(source, url)
        self._code_sequence: host.CodeSequence | None = None
        self._doctor_option: int | None | str = "auto"
        self._rnd = random.SystemRandom()  # PUIDs and codes must not be predictable

    @classmethod
    def validate_options(cls, options: dict[str, str]) -> dict[str, Any]:
        checked = super().validate_options(options)
        rules = {
            "create_uid": (r"auto|\d+", "a res_user id or 'auto'"),
            "country": (r"[A-Za-z]{2}", "a two-letter ISO code such as FR"),
            "fed_country": (r"auto|[A-Za-z]{3}", "a three-letter ISO code such as FRA, or 'auto'"),
            "alternative_id_type": (r"auto|[a-z_]+", "a GNU Health ID type such as other or country_id, or 'auto'"),
            "primary_care_doctor": (r"auto|none|\d+", "a gnuhealth_healthprofessional id, 'none' or 'auto'"),
        }
        for name, value in checked.items():
            pattern, expected = rules[name]
            if not re.fullmatch(pattern, str(value)):
                raise ConfigError(f"seeder 'gnuhealth': option {name}={value!r} is not valid: give {expected}")
        return checked

    # -- lifecycle -------------------------------------------------------
    def open(self) -> None:
        self.validate_options(dict(self.source.options))  # before connecting: a typo needs no server
        super().open()

    def _prepare(self, target: AppTarget) -> tuple[host.Conventions, build.Settings]:
        self._check_tables(target)
        conv = host.sample_conventions(target.engine, target.table)
        self._check_structure(target, conv)
        return conv, self._settings(target, conv)

    def _ready(self) -> tuple[SqlTarget, host.Conventions, build.Settings]:
        return self._target(), self.conv, self.settings

    def _error(self, message: str) -> MappingError:
        return MappingError(f"source '{self.source.name}': {message}")

    def _check_tables(self, target: SqlTarget) -> None:
        """The tables and columns every supported GNU Health version has, before reading any row."""
        for table, columns in REQUIRED_COLUMNS.items():
            reflected = target.table(table)
            if reflected is None:
                raise self._error(f"table {table} is missing: is this a GNU Health database?")
            missing = [c for c in columns if c not in reflected.c]
            if missing:
                raise self._error(f"table {table} has no column {missing[0]}: is this a supported GNU Health "
                                  "version?")

    def _check_structure(self, target: SqlTarget, conv: host.Conventions) -> None:
        """Every NOT NULL column without a default is one the seeder sets; keys are generated."""
        for table in TABLES:
            reflected = target.table(table)
            written = {*REQUIRED_COLUMNS[table], *_WRITABLE.get(table, ()), *conv.constants.get(table, {})}
            kinds = {name: ANY for name in reflected.c.keys() if name in written or name == "id"}
            problems = target.structure_problems(table, ("id",), kinds, generated={"id": build.ID_KEY},
                                                 unique_by_construction=["id"])
            if problems:
                first = problems[0]
                where = f"table {first.table}" + (f", column {first.column}," if first.column else "")
                raise self._error(f"{where} {first.message} (is this a supported GNU Health version?)")

    def _settings(self, target: SqlTarget, conv: host.Conventions) -> build.Settings:
        country = target.find("country_country", {"code": str(self.option("country")).upper()}, limit=1) \
            if target.table("country_country") is not None else []
        if not country:
            raise self._error(f"country {self.option('country')!r} is not in country_country: set country=XX "
                              "to a code the database knows")
        country_row = country[0]
        subdivisions = {}
        if target.table("country_subdivision") is not None:
            subdivisions = {row["code"]: row["id"] for row in
                            target.find("country_subdivision", {"country": country_row["id"]}, limit=10_000)}
        fed = str(self.option("fed_country"))
        fed_country = (conv.fed_country or country_row.get("code3") or None) if fed == "auto" else fed.upper()
        alt_type = str(self.option("alternative_id_type"))
        alt_type = (conv.alt_id_type or "other") if alt_type == "auto" else alt_type
        if conv.code_style == "sequence":
            self._code_sequence = host.party_code_sequence(target.engine, target.table)
            if self._code_sequence is None:
                raise self._error("party codes are numbered, but the Tryton party sequence "
                                  "(party_configuration_party_sequence, ir_sequence_N) was not found")
        self._doctor_option = self._resolve_doctor(target)
        return build.Settings(
            create_uid=self._resolve_creator(target, conv), country_id=country_row["id"],
            fed_country=fed_country, alt_id_type=alt_type, subdivisions=subdivisions,
            columns={t: frozenset(target.table(t).c.keys()) for t in TABLES})

    def _resolve_creator(self, target: SqlTarget, conv: host.Conventions) -> int:
        option = str(self.option("create_uid"))
        uid = (conv.create_uid if conv.create_uid is not None else STOCK_ADMIN_UID) if option == "auto" \
            else int(option)
        if target.table("res_user") is not None and not target.find("res_user", {"id": uid}, limit=1):
            raise self._error(f"create_uid {uid} is not a res_user id: set create_uid to an existing user")
        return uid

    def _resolve_doctor(self, target: SqlTarget) -> int | None | str:
        option = str(self.option("primary_care_doctor"))
        if option in ("auto", "none"):
            return option
        if not target.find("gnuhealth_healthprofessional", {"id": int(option)}, limit=1):
            raise self._error(f"primary_care_doctor {option} is not a gnuhealth_healthprofessional id")
        return int(option)

    def _doctor(self, conv: host.Conventions) -> int | None:
        if self._doctor_option == "auto":
            return conv.pick_doctor(self._rnd)
        return None if self._doctor_option == "none" else int(self._doctor_option)

    # -- planting --------------------------------------------------------
    def _rows(self, identity: Identity, *, final: bool) -> list[RowPlan]:
        target, conv, settings = self._ready()
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        puid = self._free_puid(target) if final else build.new_puid(self._rnd)
        code = None if conv.code_style == "sequence" else build.new_code(conv)
        if final and code is None:
            code = self._next_code(target, now)
        drawn = build.draw(conv, self._rnd, now, puid=puid, code=code, doctor=self._doctor(conv))
        return build.patient_rows(identity, conv, settings, drawn)

    def _free_puid(self, target: SqlTarget) -> str:
        for _ in range(_PUID_ATTEMPTS):
            puid = build.new_puid(self._rnd)
            if not target.find("party_party", {"ref": puid}, limit=1):
                return puid
        raise SourceError(f"source '{self.source.name}': no free PUID found in {_PUID_ATTEMPTS} draws")

    def _next_code(self, target: SqlTarget, now: datetime) -> str:
        import sqlalchemy as sa

        sequence = self._code_sequence
        with target.engine.connect() as conn:
            number = conn.execute(sa.select(sa.Sequence(sequence.sequence).next_value())).scalar_one()
            conn.commit()
        return sequence.format(number, now)

    def _value_error(self, first: Problem) -> MappingError:
        return self._error(f"table {first.table}, column {first.column}, {first.message}")

    def _plan_rows(self, identity: Identity) -> list[RowPlan]:
        return self._checked(self._rows(identity, final=False))

    def plant(self, identity: Identity) -> Placement:
        return Placement(rows=self._ready()[0].insert(self._checked(self._rows(identity, final=True))))

    def collides(self, identity: Identity) -> bool:
        target, conv, _ = self._ready()
        for code in {identity.nir, nirs.spaced(identity.nir)}:
            if target.find("party_party", {"ref": code}, limit=1) or target.find(
                    "gnuhealth_person_alternative_identification", {"code": code}, limit=1):
                return True
        for family in {identity.birth_name, identity.last_name}:
            for variant in {family, build.family_name(family, conv), build.family_name(family, _UPPER_PLAIN)}:
                if target.find("party_party", {"lastname": variant, "name": identity.first_name,
                                               "dob": identity.birth_date},
                               casefold=("lastname", "name"), limit=1):
                    return True
        return False

    def locate(self, identity: Identity) -> Placement | None:
        """Find a patient planted for ``identity`` but never recorded, through its e-mail.

        The e-mail is one of ours, so its party is a canary; the party must
        also carry the identity's birth date and name before its rows are
        claimed, and each row is matched to the plan by its link and values.
        """
        target, conv, _ = self._ready()
        parties = {row["party"] for row in target.find("party_contact_mechanism",
                                                       {"type": "email", "value": identity.email})}
        names = {n.casefold() for n in (identity.birth_name, build.family_name(identity.birth_name, conv))}
        candidates = [p for p in (target.read("party_party", {"id": pid}) for pid in parties)
                      if p and p["dob"] == identity.birth_date and (p["lastname"] or "").casefold() in names]
        if len(candidates) != 1:
            return None
        party = candidates[0]
        rows = []
        for plan in self._rows(identity, final=False):
            found = party if plan.name == "party" else self._linked_row(target, plan, party["id"], identity)
            if found is not None:
                columns = [c for c in plan.columns() if c != "id"]
                rows.append({"table": plan.table, "key": {"id": found["id"]},
                             "values": {c: to_json(found[c]) for c in columns}})
        return Placement(rows=tuple(rows))

    def _linked_row(self, target: SqlTarget, plan: RowPlan, party_id: int, identity: Identity) -> dict | None:
        link = next(iter(plan.refs))  # "party" or "name": the column pointing at the party
        candidates = target.find(plan.table, {link: party_id})
        if plan.table == "gnuhealth_person_name":
            candidates = [c for c in candidates if c["use"] == plan.values["use"]]
        elif plan.table == "party_contact_mechanism":
            wanted = {"phone": identity.phone, "phone2": identity.phone2, "email": identity.email}[plan.name]
            candidates = [c for c in candidates if _same_contact(c, wanted)]
        elif plan.table == "gnuhealth_person_alternative_identification":
            candidates = [c for c in candidates if (c["code"] or "").replace(" ", "") == identity.nir]
        return candidates[0] if candidates else None


def _same_contact(row: dict[str, Any], wanted: str | None) -> bool:
    if not wanted:
        return False
    if row["type"] == "email":
        return (row["value"] or "").lower() == wanted.lower()
    return to_e164(row["value"] or "") == wanted


# The usual French hospital writing of a family name, tried by collides() whatever the host does.
_UPPER_PLAIN = host.Conventions(upper_lastname=True, plain_lastname=True)
# Optional columns the seeder may write, by table (counted as set by the structure check).
_WRITABLE = {
    "party_party": ("federation_account", "fed_country", "alternative_identification", "activation_date",
                    "create_uid", "create_date"),
    "party_contact_mechanism": ("value_compact", "create_uid", "create_date"),
    "gnuhealth_person_alternative_identification": ("comments", "create_uid", "create_date"),
    "party_address": ("street", "street_unstructured", "streetbis", "zip", "postal_code", "subdivision",
                      "create_uid", "create_date"),
    "gnuhealth_patient": ("blood_type", "rh", "primary_care_doctor", "biological_sex", "create_uid", "create_date"),
    "gnuhealth_person_name": ("create_uid", "create_date"),
}
