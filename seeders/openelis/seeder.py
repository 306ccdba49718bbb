"""The OpenELIS seeder: canary patients written straight into an OpenELIS Global database.

PostgreSQL, schema ``clinlims``. The rows and their conventions are in
``seeders.openelis.rows``, the metadata and habits the options resolve to in
``seeders.openelis.setup``; this module drives the application seeder
lifecycle (``seeders.sql.appseeder``) through ``SqlTarget``: structure check,
collisions, one-transaction plant with the application's sequences, verify,
locate and retire.

Sequences (``person_seq``, ``patient_seq``...) are consumed with ``nextval``
as the application consumes them, and never go back: a retired canary leaves
a gap in the numbering, as any deleted or rolled-back patient does.
"""

from __future__ import annotations

from datetime import datetime
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from canary.errors import ConfigError
from canary.model import Identity, Placement
from seeders.sql.appseeder import AppSeeder
from seeders.base import SeederOption
from seeders.openelis.locate import locate_patient
from seeders.openelis.rows import SEQUENCES, RowBuilder, new_fhir_uuid, sample_habits
from seeders.openelis.setup import SCHEMA, ST, SUBJECT, OpenElisSetup, read_setup
from seeders.sql.identity_match import name_spellings, nir_writings
from seeders.sql.rows import SEQUENCE, Generated, RowPlan
from seeders.sql.apptarget import AppTarget
from seeders.sql.access import access_problems, needs

# Columns the seeder needs in each table (others it writes only when present).
REQUIRED = {
    "person": ("id", "last_name", "first_name", "street_address", "city", "zip_code", "country", "primary_phone",
               "email", "lastupdated"),
    "patient": ("id", "person_id", "gender", "birth_date", "national_id", "entered_birth_date", "lastupdated"),
    "patient_identity": ("id", "identity_type_id", "patient_id", "identity_data", "lastupdated"),
    "person_address": ("person_id", "address_part_id", "type", "value"),
}


# Every table the seeder reads or writes.
TABLES = (*REQUIRED, "history", "system_user", "reference_tables", "address_part", "patient_identity_type")


class OpenElisSeeder(AppSeeder):
    name = "openelis"
    summary = "OpenELIS Global (PostgreSQL, schema clinlims): person, patient, identities and address parts."
    application = "OpenELIS"
    dialects = ("postgresql",)
    wrong_dialect = "OpenELIS runs on PostgreSQL, not {}"
    schema = SCHEMA
    preloaded = TABLES
    parts = ("setup", "builder")
    setup: OpenElisSetup | None
    builder: RowBuilder | None
    options = (
        SeederOption("identity_types", "patient_identity types written: 'auto' (those most recent patients have), "
                     "'none', or a list among NATIONAL, ST, AKA, SUBJECT, GUID", default="auto"),
        SeederOption("national_id_identity_type", "patient_identity type that carries the NIR when written",
                     default="NATIONAL"),
        SeederOption("sys_user_id", "system_user id recorded in the audit history, or 'auto' (the user of most "
                     "of the newest history rows)", default="auto"),
        SeederOption("history", "inserts recorded in the audit history: 'auto' (as the host does), 'none', "
                     "or a list among PERSON, PATIENT, PATIENT_IDENTITY", default="auto"),
    )

    @classmethod
    def validate_options(cls, options: dict[str, str]) -> dict[str, Any]:
        checked = super().validate_options(options)
        user = checked.get("sys_user_id")
        if user is not None and not str(user).strip().isdigit() and str(user).strip().lower() != "auto":
            raise ConfigError(f"seeder 'openelis': sys_user_id must be a system_user id (a number) or 'auto', not {user!r}")
        return checked

    # -- lifecycle -------------------------------------------------------
    def _prepare(self, target: AppTarget) -> tuple[OpenElisSetup, RowBuilder]:
        self._check_structure(target)
        setup = read_setup(target, {opt.name: self.option(opt.name) for opt in self.options})
        return setup, RowBuilder(target, setup, sample_habits(target, setup))

    def check_access(self) -> list[str]:
        return access_problems(self._target(), needs((*REQUIRED, "history")), sequences=SEQUENCES.values())

    def _check_structure(self, target: AppTarget) -> None:
        tables = dict(REQUIRED, history=("id", "sys_user_id", "reference_id", "reference_table", "timestamp",
                                         "activity"))
        for table, columns in tables.items():
            if table == "history" and target.table("history") is None:
                continue
            key = ("person_id", "address_part_id") if table == "person_address" else ("id",)
            generated = {} if table == "person_address" else {"id": _sequence(table)}
            problems = target.structure_problems(table, key, {c: "any" for c in columns}, generated)
            if problems:
                raise self._structure_error(problems[0])

    def _ready(self) -> tuple[AppTarget, OpenElisSetup, RowBuilder]:
        return self._target(), self.setup, self.builder

    # -- planting --------------------------------------------------------
    def _identity_values(self, identity: Identity, *, take: bool) -> dict[str, str | None]:
        _target, setup, builder = self._ready()
        values = builder.identity_values(identity, new_fhir_uuid())
        for name, series in builder.habits.series.items():
            taken = self._taken_checker(setup.identity_types[name])
            values[name] = series.take(taken) if take else series.peek(taken)
        return values

    def _taken_checker(self, type_id: int) -> Callable[[str], bool]:
        """Whether a number is already used by an identity of this type (typed by hand since the sampling)."""
        target = self._ready()[0]
        identity = target.table("patient_identity")

        def in_use(value: str) -> bool:
            with target.engine.connect() as conn:
                return conn.execute(sa.select(identity.c.id).where(
                    identity.c.identity_type_id == type_id, identity.c.identity_data == value).limit(1)).first() is not None
        return in_use

    def _checked_rows(self, identity: Identity, identities: dict[str, str | None]) -> list[RowPlan]:
        return self._checked(self._ready()[2].rows(identity, identities, datetime.now()))

    def _plan_rows(self, identity: Identity) -> list[RowPlan]:
        return self._checked_rows(identity, self._identity_values(identity, take=False))

    def plant(self, identity: Identity) -> Placement:
        target, _setup, builder = self._ready()
        values = self._identity_values(identity, take=True)
        try:
            return Placement(rows=target.insert(self._checked_rows(identity, values)))
        except BaseException:
            for name in (ST, SUBJECT):
                if name in builder.habits.series and values.get(name):
                    builder.habits.series[name].forget(values[name])
            raise

    # -- collisions and lookups ------------------------------------------
    def collides(self, identity: Identity) -> bool:
        target = self._ready()[0]
        person, patient, ids = (target.table(t) for t in ("person", "patient", "patient_identity"))
        nir = nir_writings(identity.nir)
        queries = [
            sa.select(patient.c.id).where(patient.c.national_id.in_(nir)).limit(1),
            sa.select(ids.c.id).where(ids.c.identity_data.in_(nir)).limit(1),
            sa.select(patient.c.id).join(person, person.c.id == patient.c.person_id).where(
                sa.cast(patient.c.birth_date, sa.Date) == identity.birth_date,
                sa.func.lower(person.c.last_name).in_(name_spellings(identity.last_name, identity.birth_name)),
                sa.func.lower(person.c.first_name).in_(name_spellings(identity.first_name))).limit(1),
        ]
        with target.engine.connect() as conn:
            return any(conn.execute(query).first() is not None for query in queries)

    def locate(self, identity: Identity) -> Placement | None:
        """Find the rows of a canary planted for ``identity`` but never recorded (see openelis_locate)."""
        target, setup, builder = self._ready()
        placeholders = builder.identity_values(identity, "")
        placeholders.update({name: "?" for name in builder.habits.series})
        plans = builder.rows(identity, placeholders, datetime.now())
        return locate_patient(target, plans, identity)


def _sequence(table: str) -> Generated:
    return Generated(SEQUENCE, SEQUENCES[table])

