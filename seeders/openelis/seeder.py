"""The OpenELIS seeder: canary patients written straight into an OpenELIS Global database.

PostgreSQL, schema ``clinlims``. The schema's version is read by
``seeders.openelis.version``; the patient's rows are in ``seeders.openelis.rows``
(and ``contact``), its laboratory footprint in ``seeders.openelis.footprint``,
the metadata and habits the options resolve to in ``seeders.openelis.setup``
and ``labsite``; this module drives the application seeder
lifecycle (``seeders.sql.appseeder``) through ``SqlTarget``: structure check,
collisions, one-transaction plant with the application's sequences, verify,
locate and retire.

Sequences (``person_seq``, ``patient_seq``...) are consumed with ``nextval``
as the application consumes them, and never go back: a retired canary leaves
a gap in the numbering, as any deleted or rolled-back patient does.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa

from canary.errors import ConfigError, MappingError
from canary.model import Identity, Placement, VerifyResult
from seeders.base import AuditPatient
from seeders.sql.appseeder import AppSeeder
from seeders.base import SeederOption
from seeders.openelis.accession import next_accession
from seeders.openelis.clock import SaveClock
from seeders.openelis.fhirstore import fhir_store_note
from seeders.openelis.footprint import Footprint
from seeders.openelis.labsite import FOOTPRINT_TABLES, ANALYSIS_FINALIZED, ITEM_ENTERED, SAMPLE_FINISHED, missing_tables, read_lab_site
from seeders.openelis.locate import locate_patient
from seeders.openelis.planner import SEQUENCES
from seeders.openelis.rows import RowBuilder, new_fhir_uuid, sample_habits
from seeders.openelis.siteview import PATIENT_LAYOUT, audit_patients, site_postcodes
from seeders.openelis.setup import AUDITED, GUID, SCHEMA, ST, SUBJECT, OpenElisSetup, read_setup
from seeders.openelis.version import detect_version
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


# Every table the seeder reads or writes, reflected in one pass at open() (one by one, each table's
# foreign keys are followed table after table: seconds on a loaded server, at every drip run).
TABLES = (*REQUIRED, "history", "system_user", "reference_tables", "address_part", "patient_identity_type",
          "patient_contact", *FOOTPRINT_TABLES, "site_information", "accession_number_info", "databasechangelog")


def _server_clock() -> datetime:
    return datetime.now()  # looked up at each call, so a clock frozen by a test or a drip replay applies


class OpenElisSeeder(AppSeeder):
    name = "openelis"
    summary = ("OpenELIS Global (PostgreSQL, schema clinlims): person, patient, contact, identities, address parts "
               "and one validated request with results.")
    application = "OpenELIS"
    dialects = ("postgresql",)
    wrong_dialect = "OpenELIS runs on PostgreSQL, not {}"
    schema = SCHEMA
    preloaded = TABLES
    parts = ("setup", "builder", "footprint")
    # A new patient, request, result or audit row: the habits read at open() are read again (refresh()).
    stamped = ("patient", "sample", "analysis", "result", "history")
    setup: OpenElisSetup | None
    builder: RowBuilder | None
    footprint: Footprint | None
    #: The wall clock of the application server (Java ``System.currentTimeMillis()``, local time); tests move it.
    now: Callable[[], datetime] = staticmethod(_server_clock)
    patient_layout = PATIENT_LAYOUT
    rnd: random.Random = random.SystemRandom()
    options = (
        SeederOption("identity_types", "patient_identity types written: 'auto' (those most recent patients have), "
                     "'none', or a list among ST, AKA, SUBJECT, GUID (GUID always where patient.fhir_uuid "
                     "exists)", default="auto"),
        SeederOption("sys_user_id", "system_user id recorded in the audit history, or 'auto' (the user of most "
                     "of the newest patient-creation history rows)", default="auto"),
        SeederOption("footprint", "laboratory footprint of each canary: 'auto' (one validated request with "
                     "results, where the schema has the sample tables), or 'none'", default="auto"),
        SeederOption("history", "inserts recorded in the audit history: 'auto' (as the host does), 'none', "
                     f"or a list among {', '.join(AUDITED.values())}", default="auto"),
    )

    @classmethod
    def validate_options(cls, options: dict[str, str]) -> dict[str, Any]:
        checked = super().validate_options(options)
        footprint = str(checked.get("footprint", "auto")).strip().lower()
        if footprint not in ("auto", "none"):
            raise ConfigError(f"seeder 'openelis': footprint must be 'auto' or 'none', not {footprint!r}")
        user = checked.get("sys_user_id")
        if user is not None and not str(user).strip().isdigit() and str(user).strip().lower() != "auto":
            raise ConfigError(f"seeder 'openelis': sys_user_id must be a system_user id (a number) or 'auto', not {user!r}")
        return checked

    # -- lifecycle -------------------------------------------------------
    def _prepare(self, target: AppTarget) -> tuple[OpenElisSetup, RowBuilder, Footprint | None]:
        version = detect_version(target, self.source.name)
        self._check_structure(target)
        setup = read_setup(target, {opt.name: self.option(opt.name) for opt in self.options}, version)
        builder = RowBuilder(target, setup, sample_habits(target, setup))
        return setup, builder, self._footprint(target, setup, builder)

    def _footprint(self, target: AppTarget, setup: OpenElisSetup, builder: RowBuilder) -> Footprint | None:
        if str(self.option("footprint") or "auto").strip().lower() == "none":
            return None
        if missing_tables(target):
            return None  # a schema without the sample tables: patients only (docs/seeders/openelis.md)
        site = read_lab_site(target, setup.history_tables)
        for status in (SAMPLE_FINISHED, ITEM_ENTERED, ANALYSIS_FINALIZED):
            if status not in site.statuses:
                raise MappingError(f"source '{self.source.name}': no status_of_sample {status[1]!r} ({status[0]}) "
                                   "for the laboratory footprint (set --set footprint=none to plant patients only)")
        footprint = Footprint(builder.planner, site, setup.sys_user_id, self.rnd)
        if not footprint.choose_tests():
            raise MappingError(f"source '{self.source.name}': no active numeric test of a common panel (NFS, "
                               "ionogramme, glycemie, bilan lipidique, TSH, CRP) in the test catalogue for the "
                               "laboratory footprint (set --set footprint=none to plant patients only)")
        return footprint

    def check_access(self) -> list[str]:
        target = self._target()
        written = [name for name in SEQUENCES if target.table(name) is not None]
        return access_problems(target, needs(written), sequences=[SEQUENCES[name] for name in written])

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

    def _all_rows(self, identity: Identity, identities: dict[str, str | None]) -> list[RowPlan]:
        """The patient's rows, then its footprint; the registration is as early as the footprint's pace needs."""
        target, _setup, builder = self._ready()
        now = self.now()
        if self.footprint is None:
            return builder.rows(identity, identities, SaveClock(now, self.rnd))
        episode = self.footprint.episode(now)
        rows = builder.rows(identity, identities, SaveClock(episode.registered, self.rnd))
        accession = next_accession(target, episode.ordered, self.footprint.site.accession_numbers)
        return rows + self.footprint.rows(identity, episode, accession)

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
        return self._checked(self._all_rows(identity, identities))

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

    # -- a life over time --------------------------------------------------
    def add_event(self, identity: Identity, placement: Placement, when: datetime) -> Placement | None:
        """A later request with validated results, dated ``when``, when the patient comes back by then.

        Whether it comes back follows the pace of one of the site's patients
        (``Footprint.comes_back``); when it does not, the placement is returned
        as it was (no new row: the patient did not come back this time).
        """
        if self.footprint is None:
            return None
        target = self._ready()[0]
        patient_id = next((row["key"]["id"] for row in placement.rows if row["table"] == "patient"), None)
        if patient_id is None:
            return None
        local = self._server_time(when)
        last = max((datetime.fromisoformat(str(row["values"]["entered_date"])) for row in placement.rows
                    if row["table"] == "sample" and row["values"].get("entered_date")), default=None)
        # Asked at every drip event: about the days since the previous one, not again about those since the
        # last request (asked each time over a growing period, canaries came back more often than patients:
        # 43-57 % with a second request over 6 replays, against 33 % of the patients of the same period).
        asked = [self._server_time(datetime.fromisoformat(t)) for t in placement.extra.get("drip_events", ())]
        since = max([last, *(t for t in asked if last is None or t > last)]) if last is not None else None
        if since is not None and not self.footprint.comes_back(int(patient_id), since, local):
            return placement
        episode = self.footprint.episode(local)
        accession = next_accession(target, episode.ordered, self.footprint.site.accession_numbers)
        rows = self._checked(self.footprint.rows(identity, episode, accession, patient_id=int(patient_id)))
        return replace(placement, rows=tuple(placement.rows) + target.insert(rows))

    def _server_time(self, when: datetime) -> datetime:
        """``when`` on the application server's clock (naive local time, as ``datetime.now()`` reads it)."""
        if when.tzinfo is None:
            return when
        offset = datetime.now() - datetime.now(timezone.utc).replace(tzinfo=None)
        offset = timedelta(minutes=round(offset.total_seconds() / 60))
        return when.astimezone(timezone.utc).replace(tzinfo=None) + offset

    # -- reading the site (read only) ---------------------------------------
    def patients_for_audit(self, limit: int | None = None) -> Iterator[AuditPatient] | None:
        return audit_patients(self._target(), limit)

    def site_postcodes(self, limit: int = 5000) -> Counter[str] | None:
        return site_postcodes(self._target(), limit)

    def verify(self, identity: Identity, placement: Placement) -> VerifyResult:
        result = super().verify(identity, placement)
        note = fhir_store_note(self._target(), list(placement.rows))
        return result if note is None else VerifyResult(result.state, (*result.details, note))

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
        placeholders.update({name: "?" for name in (*builder.habits.series, GUID)})  # values unknown, rows sought
        plans = builder.rows(identity, placeholders, SaveClock(self.now(), self.rnd))
        return locate_patient(target, plans, identity, setup.history_tables)


def _sequence(table: str) -> Generated:
    return Generated(SEQUENCE, SEQUENCES[table])

