"""The OpenMRS seeder: canary patients written straight into an OpenMRS database.

What a patient is made of and how the rows are written is in
``seeders.openmrs.rows``; identifier numbering (idgen or by hand, with the
type's check digit) in ``seeders.openmrs.numbers``; the metadata options
resolve to in ``seeders.openmrs.setup``. This module drives them through the
application seeder lifecycle (``seeders.sql.appseeder``): structure check,
collisions, one-transaction plant, verify, locate and retire, all through
``SqlTarget``. The platform version is read from the schema
(``seeders.openmrs.version``); creation stamps come from the database's
clock (``seeders.openmrs.clock``); from 2.1 on, each canary is re-indexed
through REST so OpenMRS's own search returns it (``seeders.openmrs.searchindex``).
"""

from __future__ import annotations

import os
import random
import re
from datetime import datetime
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit

import sqlalchemy as sa

from canary.errors import ConfigError, SourceError
from canary.model import Identity, Placement, SourceSpec, VerifyResult, VerifyState
from seeders.sql.appseeder import AppSeeder
from seeders.base import SeederOption
from seeders.openmrs.clock import local_stamps, server_stamps
from seeders.openmrs.footprint import VitalsHabit, footprint_rows, learn_vitals
from seeders.openmrs.locate import locate_patient
from seeders.openmrs.numbers import IdentifierNumbering, recent_log_comment
from seeders.openmrs.rows import TABLES, RowBuilder, sample_habits
from seeders.openmrs.rest import OpenMrsRest
from seeders.openmrs.searchindex import SearchIndex, searchable_attribute_types
from seeders.openmrs.setup import METADATA_TABLES, OpenMrsSetup, read_setup
from seeders.openmrs.version import PlatformVersion, read_version
from seeders.sql.identity_match import name_spellings, nir_writings
from seeders.sql.rows import RowPlan
from seeders.sql.apptarget import AppTarget
from seeders.sql.access import access_problems, needs


DEFAULT_PASSWORD_ENV = "CANARY_OPENMRS_REST_PASSWORD"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class OpenMrsSeeder(AppSeeder):
    name = "openmrs"
    summary = ("OpenMRS 2.0-2.8 (MariaDB/MySQL): person, name, address, phone attribute, patient and identifier "
               "rows, a first visit with vitals; indexed for OpenMRS's search through REST.")
    application = "OpenMRS"
    dialects = ("mysql", "mariadb")
    wrong_dialect = "this seeder writes OpenMRS on MariaDB/MySQL, not {}"
    preloaded = (*TABLES, *METADATA_TABLES, "liquibasechangelog")
    parts = ("version", "setup", "numbering", "builder", "search", "vitals")
    version: PlatformVersion | None
    setup: OpenMrsSetup | None
    numbering: IdentifierNumbering | None
    builder: RowBuilder | None
    search: SearchIndex | None
    vitals: VitalsHabit | None  # how the site records vital signs; None: no footprint
    _search_error: str | None = None  # the first REST failure of a verify run
    options = (
        SeederOption("identifier_type", "Patient identifier type (name or id) numbering the canaries; "
                     "default 'OpenMRS ID', else 'OpenMRS Identification Number'", default=""),
        SeederOption("location", "Location (name or id) the identifier is issued at; default the location of "
                     "the newest identifiers of that type, else 'Unknown Location'", default=""),
        SeederOption("phone_attribute_type", "Person attribute type (name or id) holding the phone, or 'none'",
                     default="Telephone Number"),
        SeederOption("email_attribute_type", "Person attribute type (name or id) holding the e-mail, or 'none'",
                     default="none"),
        SeederOption("nir_identifier_type", "Patient identifier type (name or id) holding the NIR, or 'none'",
                     default="none"),
        SeederOption("creator", "users.user_id recorded as creator of every row, or 'auto' (who created most "
                     "of the newest patients)", default="auto"),
        SeederOption("footprint", "'auto': where the site records vital signs, a canary gets a visit with a "
                     "vitals encounter by one of its providers, at the site's rate; 'none': registration only",
                     default="auto"),
        SeederOption("rest_url", "OpenMRS webapp URL (https://host/openmrs): each canary is indexed through REST "
                     "searchindexupdate so OpenMRS's patient search returns it; empty: not indexed", default=""),
        SeederOption("rest_user", "OpenMRS account (an admin) for rest_url, HTTP basic authentication", default=""),
        SeederOption("rest_password_env", "environment variable holding rest_user's password",
                     default=DEFAULT_PASSWORD_ENV),
    )

    def __init__(self, source: SourceSpec, url: str) -> None:
        super().__init__(source, url)
        self._rnd = random.Random()  # who gets a footprint, and the vital signs' values

    @classmethod
    def validate_options(cls, options: dict[str, str]) -> dict[str, Any]:
        checked = super().validate_options(options)
        creator = checked.get("creator")
        if creator is not None and not str(creator).strip().isdigit() and str(creator).strip().lower() != "auto":
            raise ConfigError(f"seeder 'openmrs': creator must be a users.user_id (a number) or 'auto', not {creator!r}")
        footprint = str(checked.get("footprint", "auto")).strip().lower()
        if footprint not in ("auto", "none"):
            raise ConfigError(f"seeder 'openmrs': footprint must be 'auto' or 'none', not {footprint!r}")
        url, user = (str(checked.get(name) or "").strip() for name in ("rest_url", "rest_user"))
        if bool(url) != bool(user):
            raise ConfigError("seeder 'openmrs': rest_url and rest_user go together (give both, or neither)")
        if url and not re.match(r"https?://[^/\s]+", url):
            raise ConfigError(f"seeder 'openmrs': rest_url must be an http(s) URL such as https://host/openmrs, "
                              f"not {url!r}")
        if url and "@" in urlsplit(url).netloc:  # the registry stores options: never a password
            raise ConfigError("seeder 'openmrs': rest_url must not carry credentials: give rest_user, and the "
                              "password in the variable named by rest_password_env")
        variable = checked.get("rest_password_env")
        if variable is not None and not _ENV_NAME.fullmatch(str(variable)):
            raise ConfigError(f"seeder 'openmrs': rest_password_env must name an environment variable, "
                              f"not {variable!r}")
        return checked

    # -- lifecycle -------------------------------------------------------
    def _prepare(self, target: AppTarget) -> tuple[Any, ...]:
        self._check_structure(target)
        version = read_version(target)
        setup = read_setup(target, {opt.name: self.option(opt.name) for opt in self.options})
        numbering = IdentifierNumbering(target, setup.identifier_type, setup.idgen)
        numbering.load()
        comment = recent_log_comment(target, setup.idgen.id) if setup.idgen else None
        builder = RowBuilder(target, setup, sample_habits(target, setup), comment)
        vitals = learn_vitals(target) if str(self.option("footprint")).strip().lower() == "auto" else None
        search = SearchIndex(self.source.name, version, self._rest(), searchable_attribute_types(target))
        return version, setup, numbering, builder, search, vitals

    def _rest(self) -> OpenMrsRest | None:
        """The REST client when rest_url is set; the password is read here, never stored."""
        url = str(self.option("rest_url") or "").strip()
        if not url:
            return None
        variable = str(self.option("rest_password_env") or DEFAULT_PASSWORD_ENV)
        password = os.environ.get(variable)
        if not password:
            raise ConfigError(f"source '{self.source.name}': environment variable {variable} (rest_password_env) "
                              "is not set: export the password of rest_user in it")
        return OpenMrsRest(self.source.name, url, str(self.option("rest_user")).strip(), password)

    def close(self) -> None:
        if getattr(self, "search", None) is not None:
            self.search.close()
        self._search_error = None
        super().close()

    def notices(self) -> list[str]:
        return self.search.notices() if self.search is not None else []

    def check_access(self) -> list[str]:
        target, setup, _numbering, _builder = self._ready()
        wanted = needs(TABLES)
        wanted["liquibasechangelog"] = ("SELECT",)  # the platform version is read there
        if self.vitals is not None:  # the footprint is written and retired like the registration
            wanted.update(needs(("visit", "encounter", "encounter_provider", "obs")))
        if setup.idgen is not None:  # the next identifier is taken by updating idgen's counter
            wanted["idgen_seq_id_gen"] = ("SELECT", "UPDATE")
        problems = access_problems(target, wanted)
        if self.search.rest is not None:
            try:
                self.search.rest.check_credentials()
            except SourceError as err:
                problems.append(str(err))
        return problems

    def _check_structure(self, target: AppTarget) -> None:
        idgen = target.table("idgen_seq_id_gen") is not None
        for table, (key, always, optional) in TABLES.items():
            if table == "idgen_log_entry" and not idgen:
                continue
            reflected = target.table(table)
            columns = [key, *always, *(c for c in optional if reflected is not None and c in reflected.c)]
            problems = target.structure_problems(table, (key,), dict.fromkeys(columns, "any"),
                                                 unique_by_construction=(key,))
            if problems:
                raise self._structure_error(problems[0])

    def _ready(self) -> tuple[AppTarget, OpenMrsSetup, IdentifierNumbering, RowBuilder]:
        return self._target(), self.setup, self.numbering, self.builder

    # -- planting --------------------------------------------------------
    def _checked_rows(self, identity: Identity, identifier: str,
                      stamps: Iterator[datetime] | None = None) -> list[RowPlan]:
        return self._checked(self._ready()[3].rows(identity, identifier, stamps or local_stamps()))

    def _with_footprint(self, identity: Identity, rows: list[RowPlan], stamps: Iterator[datetime],
                        always: bool = False) -> list[RowPlan]:
        """The registration rows, then (at the site's rate) the first visit with vitals (#12)."""
        if self.vitals is None or not (always or self._rnd.random() < self.vitals.rate):
            return rows
        registered = next(row.values["date_created"] for row in rows if row.table == "person")
        return rows + self._checked(footprint_rows(self._target(), self.vitals, identity, stamps, registered,
                                                   self._rnd))

    def _plan_rows(self, identity: Identity) -> list[RowPlan]:
        stamps = local_stamps()
        rows = self._checked_rows(identity, self._ready()[2].preview(), stamps)
        return self._with_footprint(identity, rows, stamps, always=True)  # what plant may write

    def check_fits(self, identities: Iterable[Identity]) -> None:
        preview = self._ready()[2].preview()  # once for the batch: nothing is taken before the plant
        for identity in identities:
            self._checked_rows(identity, preview)

    def plant(self, identity: Identity) -> Placement:
        target, _setup, numbering, _builder = self._ready()
        identifier = numbering.take()
        try:
            stamps = server_stamps(target)
            rows = self._with_footprint(identity, self._checked_rows(identity, identifier, stamps), stamps)
            placement = Placement(rows=target.insert(rows))
        except BaseException:
            numbering.forget(identifier)
            raise
        self.search.after_plant(placement)  # committed: a failure here leaves the canary planted, told once
        return placement

    def verify(self, identity: Identity, placement: Placement) -> VerifyResult:
        """The rows read back; then, when REST is set, whether OpenMRS's own search returns the canary."""
        result = super().verify(identity, placement)
        if result.state is not VerifyState.OK or self.search is None or self.search.rest is None:
            return result
        if self._search_error is None:
            try:
                why = self.search.missing_from_search(placement)
            except SourceError as err:
                self._search_error = str(err)  # do not wait on an unreachable server again for every canary
        if self._search_error is not None:
            return VerifyResult(result.state, (*result.details, f"search not checked: {self._search_error}"))
        if why is None:
            return VerifyResult(result.state, result.details, searchable=True)
        return VerifyResult(result.state, (*result.details, why), searchable=False)

    # -- collisions and lookups ------------------------------------------
    def collides(self, identity: Identity) -> bool:
        target = self._ready()[0]
        person, name, ids = (target.table(t) for t in ("person", "person_name", "patient_identifier"))
        same_nir = sa.select(ids.c.patient_identifier_id).where(ids.c.identifier.in_(nir_writings(identity.nir)),
                                                                ids.c.voided == 0).limit(1)
        families = name_spellings(identity.last_name, identity.birth_name)
        same_person = (
            sa.select(person.c.person_id).join(name, name.c.person_id == person.c.person_id)
            .where(person.c.voided == 0, name.c.voided == 0, person.c.birthdate == identity.birth_date,
                   sa.func.lower(name.c.family_name).in_(families),
                   sa.func.lower(name.c.given_name).in_(name_spellings(identity.first_name)))
            .limit(1))
        with target.engine.connect() as conn:
            return any(conn.execute(query).first() is not None for query in (same_nir, same_person))

    def locate(self, identity: Identity) -> Placement | None:
        """Find the rows of a canary planted for ``identity`` but never recorded.

        Anchored on a contact point only a canary carries (its phone or
        e-mail attribute), then checked against the identity's birth date
        and names before any row is claimed. With both attribute types set
        to 'none' there is nothing to anchor on and nothing is found.
        """
        target, setup, _numbering, builder = self._ready()
        return locate_patient(target, setup, builder, identity, self.vitals)
