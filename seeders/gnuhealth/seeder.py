"""The GNU Health seeder: patients written into a GNU Health HMIS database (Tryton tables).

A patient is what one save of GNU Health's party form creates: ``party_party``
(a person and a patient, with a PUID), its language row, its official name,
its address, its contact mechanisms (each with a language row), the NIR as an
alternative ID and ``gnuhealth_patient`` (see seeders/gnuhealth/rows.py).
Everything goes in one transaction; retire deletes exactly those rows. The
version (4.4 or 5.0) and the site setup come from the database
(seeders/gnuhealth/site.py); how the rows are written (case of names, phone
format, optional fields, creator) follows its latest patients
(seeders/gnuhealth/host.py).
"""

from __future__ import annotations

import random
import re
from datetime import datetime
from typing import Any

from canary.identity import nir as nirs
from canary.errors import ConfigError, MappingError, SourceError
from canary.model import Identity, Placement
from canary.phones import to_e164
from seeders.gnuhealth import host
from seeders.gnuhealth.links import attached_rows
from seeders.gnuhealth import rows as build
from seeders.gnuhealth import site as sites
from seeders.sql.appseeder import AppSeeder
from seeders.sql.apptarget import AppTarget
from seeders.base import SeederOption
from seeders.sql.fields import ANY
from seeders.sql.rows import RowPlan
from seeders.sql.target import Problem, SqlTarget
from seeders.sql.values import to_json

TABLES = ("party_party", "party_party_lang", "gnuhealth_person_name", "party_address", "party_contact_mechanism",
          "party_contact_mechanism_language", "gnuhealth_person_alternative_identification", "gnuhealth_patient")
# Tables read for the site setup and the version, besides those written.
_READ = ("ir_module", "res_user", "company_company", "country_country", "country_subdivision",
         "gnuhealth_federation_country_config")
# Columns every supported GNU Health version has; the others are written when present.
# LINK is the version's column pointing at the party (party in 5.0, name in 4.4).
LINK = "<link>"
REQUIRED_COLUMNS = {
    "party_party": ("code", "name", "lastname", "ref", "dob", "gender", "is_person", "is_patient", "active",
                    "federation_account", "fed_country", "create_target"),
    "party_party_lang": ("party", "lang", "company"),
    "gnuhealth_person_name": ("party", "use", "family", "given"),
    "party_address": ("party", "street", "postal_code", "city", "country"),
    "party_contact_mechanism": ("party", "type", "value", "value_compact"),
    "party_contact_mechanism_language": ("contact_mechanism", "language", "company"),
    "gnuhealth_person_alternative_identification": (LINK, "code", "alternative_id_type"),
    "gnuhealth_patient": (LINK,),
}
# Tryton's stock admin user: the creator when the database has no patient to learn from.
STOCK_ADMIN_UID = 1
_PUID_ATTEMPTS = 50


class GnuHealthSeeder(AppSeeder):
    name = "gnuhealth"
    summary = "GNU Health HMIS on PostgreSQL (Tryton tables): party, names, contacts, NIR, address, patient."
    application = "GNU Health"
    preloaded = TABLES + _READ
    written_tables = TABLES
    parts = ("conv", "settings")
    conv: host.Conventions | None
    settings: build.Settings | None
    options = (
        SeederOption("create_uid", "res_user id recorded as creator of the rows; 'auto': the user who "
                     "created most of the latest patients, else 1 (admin)", default="auto"),
        SeederOption("country", "ISO 3166-1 alpha-2 code of the address country, looked up in "
                     "country_country", default="FR"),
        SeederOption("fed_country", "ISO 3166-1 alpha-3 prefix of the federation account; 'auto': the "
                     "federation country of the site's configuration, else none (prefix XXX)", default="auto"),
        SeederOption("alternative_id_type", "alternative_id_type of the row holding the NIR; 'auto': the type "
                     "the latest patients' NIRs have, else 'country_id'", default="auto"),
        SeederOption("primary_care_doctor", "gnuhealth_healthprofessional id of the GP, 'none', or 'auto': one "
                     "of the GPs of the latest patients, when most of them have one", default="auto"),
    )

    def __init__(self, source, url: str) -> None:
        super().__init__(source, url)
        self._code_sequence: host.CodeSequence | None = None
        self._doctor_option: int | None | str = "auto"
        self._rnd = random.SystemRandom()  # PUIDs and codes must not be predictable
        self.version: sites.Version | None = None

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
        try:
            self.version = sites.detect(target)
        except sites.UnsupportedVersion as err:
            raise self._error(f"unsupported GNU Health version: {err}") from None
        self._check_columns(target)
        conv = host.sample_conventions(target.engine, target.table, self.version.link, self.version.empty_text)
        self._check_structure(target, conv)
        return conv, self._settings(target, conv)

    def _ready(self) -> tuple[SqlTarget, host.Conventions, build.Settings]:
        return self._target(), self.conv, self.settings

    def _error(self, message: str) -> MappingError:
        return MappingError(f"source '{self.source.name}': {message}")

    def _check_tables(self, target: SqlTarget) -> None:
        """The tables every supported GNU Health version has, before reading any row."""
        party = target.table("party_party")
        missing = [c for c in REQUIRED_COLUMNS["party_party"][:6] if party is not None and c not in party.c]
        if missing:
            raise self._error(f"table party_party has no column {missing[0]}: is this a supported GNU Health "
                              "version?")
        for table in REQUIRED_COLUMNS:
            if target.table(table) is None:
                raise self._error(f"table {table} is missing: is this a GNU Health database?")

    def _check_columns(self, target: SqlTarget) -> None:
        """The columns of the detected version, before reading any row."""
        for table, columns in REQUIRED_COLUMNS.items():
            reflected = target.table(table)
            missing = [c for c in (self.version.link if c == LINK else c for c in columns) if c not in reflected.c]
            if missing:
                raise self._error(f"table {table} has no column {missing[0]}: is this a supported GNU Health "
                                  "version?")

    def _check_structure(self, target: SqlTarget, conv: host.Conventions) -> None:
        """Every NOT NULL column without a default is one the seeder sets; keys are generated."""
        for table in TABLES:
            reflected = target.table(table)
            written = {*(self.version.link if c == LINK else c for c in REQUIRED_COLUMNS[table]),
                       *_WRITABLE.get(table, ()), *conv.constants.get(table, {}),
                       *self.version.empty_text.get(table, ()), *_booleans(reflected)}
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
        create_uid = self._resolve_creator(target, conv)
        site = sites.read_site(target, create_uid)
        fed = str(self.option("fed_country"))
        fed_country = site.fed_country if fed == "auto" else fed.upper()
        alt_type = str(self.option("alternative_id_type"))
        # GNU Health has no default ID type; the NIR is the country's own ID ('Country of origin ID').
        alt_type = (conv.alt_id_type or "country_id") if alt_type == "auto" else alt_type
        if conv.code_style == "sequence":
            self._code_sequence = host.party_code_sequence(target.engine, target.table)
            if self._code_sequence is None:
                raise self._error("party codes are numbered, but the Tryton party sequence "
                                  "(party_configuration_party_sequence, ir_sequence_N) was not found")
        self._doctor_option = self._resolve_doctor(target)
        return build.Settings(
            create_uid=create_uid, country_id=country_row["id"],
            fed_country=fed_country, alt_id_type=alt_type, subdivisions=subdivisions,
            columns={t: frozenset(target.table(t).c.keys()) for t in TABLES}, version=self.version, site=site,
            booleans={t: _booleans(target.table(t)) for t in TABLES})

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
        now = self._now(target)
        puid = self._free_puid(target) if final else build.new_puid(self._rnd)
        code = None if conv.code_style == "sequence" else \
            build.new_code(conv, settings.site, build.given_name(identity, conv))
        if final and code is None:
            code = self._next_code(target, now)
        drawn = build.draw(conv, self._rnd, now, puid=puid, code=code, doctor=self._doctor(conv))
        return build.patient_rows(identity, conv, settings, drawn)

    def _now(self, target: SqlTarget) -> datetime:
        """What Tryton's CURRENT_TIMESTAMP stores: the time in the database session's time zone."""
        import sqlalchemy as sa

        with target.engine.connect() as conn:
            return conn.execute(sa.text("SELECT LOCALTIMESTAMP")).scalar_one()

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

    def retire(self, placement: Placement) -> None:
        """Delete the canary's rows, unless the hospital attached a row of its own to one of them."""
        attached = attached_rows(self._target().engine, placement.rows) if placement.rows else []
        if attached:
            raise SourceError(f"source '{self.source.name}': retire refused: {attached[0]} (added by the "
                              "hospital; deleting would blank or delete it); nothing was deleted")
        super().retire(placement)

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
        found_ids = {"party": party["id"]}
        for plan in self._rows(identity, final=False):
            found = party if plan.name == "party" else self._linked_row(target, plan, found_ids, identity)
            if found is not None:
                found_ids[plan.name] = found["id"]
                columns = [c for c in plan.columns() if c != "id"]
                rows.append({"table": plan.table, "key": {"id": found["id"]},
                             "values": {c: to_json(found[c]) for c in columns}})
        return Placement(rows=tuple(rows))

    def _linked_row(self, target: SqlTarget, plan: RowPlan, found_ids: dict[str, int],
                    identity: Identity) -> dict | None:
        link, ref = next(iter(plan.refs.items()))  # the column pointing at the party or at its contact
        if ref.alias not in found_ids:
            return None
        candidates = target.find(plan.table, {link: found_ids[ref.alias]})
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
_STAMPS = ("create_uid", "create_date", "write_uid", "write_date")
# Optional columns the seeder may write, by table (counted as set by the structure check).
_WRITABLE = {
    "party_party": ("alternative_identification", "activation_date", "citizenship", "residence", *_STAMPS),
    "party_party_lang": _STAMPS,
    "gnuhealth_person_name": _STAMPS,
    "party_address": ("subdivision", *_STAMPS),
    "party_contact_mechanism": _STAMPS,
    "party_contact_mechanism_language": _STAMPS,
    "gnuhealth_person_alternative_identification": ("comments", *_STAMPS),
    "gnuhealth_patient": ("blood_type", "rh", "primary_care_doctor", "biological_sex", *_STAMPS),
}


def _booleans(table) -> frozenset[str]:
    """The boolean columns of a reflected table: written explicitly, as the client sends them."""
    import sqlalchemy as sa

    return frozenset(c.name for c in table.c if isinstance(c.type, sa.Boolean))
