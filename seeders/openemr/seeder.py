"""The OpenEMR seeder: patients written the way OpenEMR's own screens write them.

See seeders/openemr/rows.py for the rows and their order, docs/seeders/
openemr.md for the options. The patient's pid is read just before the insert
(MAX(pid)+1, as PatientService::getFreshPid does); ``patient_data.pid`` is
UNIQUE, so a patient created by OpenEMR at the same instant makes our insert
fail as a whole, and it is tried again with the next pid.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

import sqlalchemy as sa

from canary.errors import ConfigError, SourceError
from canary.model import Identity, Placement, Sex
from canary.planting.events import DUE_KEY, PACE_KEY
from seeders.sql import appsql
from seeders.sql.access import access_problems, needs
from seeders.sql.appsql import ApplicationSqlSeeder
from seeders.sql.siteread import PatientLayout
from seeders.base import SeederOption
from seeders.openemr import auditlog
from seeders.openemr.host import OpenEmrHost, read_host
from seeders.openemr.rows import (BETWEEN_ALIAS, Numbers, allergy_rows, build_rows, portal_values, resolve_choices,
                                  canary_spread, second_save, writes_allergies)
from seeders.openemr.later import LaterPlan, last_dated, later_visit, visit_rows
from seeders.openemr.located import rows_of
from seeders.openemr.clinic import ClinicHabits, read_clinic
from seeders.openemr.footprint import deferred_visit, draw_schedule
from seeders.openemr.setup import OpenEmrSetup, read_setup
from seeders.sql.rows import AUTOINCREMENT, Generated, RowPlan
from seeders.openemr.values import comb_uuid, dupscore_params, dupscore_query, nir_spaced, portal_password_hash
from seeders.sql.values import to_json

# Tables written, in insertion order (uuid_registry first: its rows come before each).
_WRITTEN = ("uuid_registry", "patient_data", "employer_data", "history_data", "insurance_data", "lists",
            "lists_touch", "form_encounter", "forms", "form_vitals", "openemr_postcalendar_events",
            "patient_access_onsite", "log", "log_comment_encrypt")
_ATTEMPTS = 3
# In a placement's extra: the record's later save, [seconds after registration, updated_by] while to be
# made, 0 when the site's rate said never, -1 once made (seeders/openemr/rows.py second_save).
SAVE_KEY = "openemr_second_save"
# In a placement's extra: seconds after registering when later credentials are handed out (Seeder.add_due).
PORTAL_KEY = "openemr_portal_after"
# In a placement's extra: the registration day's visit the drip run writes (footprint.Schedule.visit); 0 once done.
DAY_KEY = "openemr_day_visit"
# In a placement's extra: the log rows of the patient's first weeks were written with its registration.
BETWEEN_KEY = "openemr_between_written"
# Where OpenEMR keeps its patients, for `canary audit --separability`, drip pace and catchment (read only).
# OpenEMR's schema declares no foreign keys: every table that holds a patient's pid is listed here
# (OpenEMR's sql/database.sql; the log keys it as patient_id, documents as foreign_id, the calendar as pc_pid).
PATIENT_LAYOUT = PatientLayout(
    table="patient_data", key=("pid",), created="regdate", postcode="postal_code", birth="DOB",
    related=(("form_encounter", "pid"), ("forms", "pid"), ("form_vitals", "pid"), ("lists", "pid"),
             ("insurance_data", "pid"), ("history_data", "pid"), ("employer_data", "pid"),
             ("openemr_postcalendar_events", "pc_pid"), ("patient_access_onsite", "pid"), ("log", "patient_id"),
             ("documents", "foreign_id"), ("pnotes", "pid"), ("billing", "pid"), ("prescriptions", "patient_id"),
             ("immunizations", "patient_id"), ("transactions", "pid"), ("amendments", "pid"),
             ("procedure_order", "patient_id"), ("patient_tracker", "pid"), ("onsite_portal_activity", "patient_id"),
             ("patient_reminders", "pid"), ("issue_encounter", "pid"), ("lists_touch", "pid")))


class OpenEmrSeeder(ApplicationSqlSeeder):
    name = "openemr"
    summary = "OpenEMR (MariaDB/MySQL): patients written as OpenEMR's new-patient screen writes them."
    application = "OpenEMR"
    written_tables = _WRITTEN
    patient_layout = PATIENT_LAYOUT
    required_columns = {
        "patient_data": ("id", "uuid", "pid", "pubpid", "fname", "lname", "mname", "DOB", "sex", "street",
                         "postal_code", "city", "country_code", "ss", "phone_home", "phone_cell", "email",
                         "regdate", "date"),
        "uuid_registry": ("uuid", "table_name", "table_id"),
        "lists": ("id", "uuid", "date", "type", "title", "pid", "activity"),
        "patient_access_onsite": ("id", "pid", "portal_username", "portal_pwd", "portal_pwd_status"),
        "version": ("v_major", "v_minor", "v_patch", "v_database"),
        "globals": ("gl_name", "gl_index", "gl_value"),
        "layout_options": ("form_id", "field_id", "group_id", "seq", "data_type", "uor"),
        "insurance_data": ("id", "type", "provider", "pid", "date", "accept_assignment", "policy_type"),
        "log": ("id", "date", "event", "category", "user", "groupname", "comments", "user_notes", "patient_id",
                "success", "crt_user", "log_from", "menu_item_id", "ccda_doc_id"),
        "log_comment_encrypt": ("id", "log_id", "encrypt", "checksum", "checksum_api", "version"),
    }
    options = (
        SeederOption("user_id", "users.id of the OpenEMR user recorded as creator (created_by, lists.user); "
                     "auto: drawn among the users who created the site's recent patients, else admin", default="auto"),
        SeederOption("provider_id", "users.id written as the patient's provider (providerID); auto: drawn "
                     "from a recent patient of the site; none: NULL", default="auto"),
        SeederOption("ref_provider_id", "users.id written as referring provider (ref_providerID); auto: as the "
                     "recent patients; none: NULL", default="auto"),
        SeederOption("facility_id", "facility.id written as the patient's care team facility "
                     "(care_team_facility); auto: as the recent patients have it (usually empty)", default="auto"),
        SeederOption("country_code", "patient_data.country_code; empty: drawn from a recent patient, else FR",
                     default=""),
        SeederOption("language", "patient_data.language (a list_options 'language' option_id); empty: drawn "
                     "from a recent patient, else french", default=""),
        SeederOption("create_allergies", "write the identity's allergies as 'allergy' issues in lists",
                     default="yes"),
        SeederOption("create_portal_account", "create patient portal credentials in patient_access_onsite: "
                     "auto (at the share of the site's new patients who get them), yes or no", default="auto"),
        SeederOption("footprint", "write the registration day's encounter, vitals, problems, medications and "
                     "follow-up appointment, each at this site's rate", default="yes"),
        SeederOption("day_visit", "the registration day's visit: drip (written by `canary drip run` when its "
                     "time has come, the registration at the planting moment) or planting (squeezed between the "
                     "site's last registration and the planting moment)", default="drip"),
        SeederOption("future_appointment_status", "pc_apptstatus of a follow-up appointment (x: cancelled, so "
                     "no one expects the patient; site: the statuses of the site's own follow-ups)", default="x"),
        SeederOption("portal_login", "portal login name: auto (like the site's accounts), email, account "
                     "(the account name) or identity (the identity's portal_login)", default="auto"),
    )
    option_parsers = {
        "user_id": appsql.parse_auto_int,
        "provider_id": appsql.parse_auto_int_or_none,
        "ref_provider_id": appsql.parse_auto_int_or_none,
        "facility_id": appsql.parse_auto_int,
        "country_code": appsql.parse_text,
        "language": appsql.parse_text,
        "create_allergies": appsql.parse_bool,
        "create_portal_account": appsql.parse_choice("auto", "yes", "no"),
        "portal_login": appsql.parse_choice("auto", "email", "account", "identity"),
        "footprint": appsql.parse_bool,
        "day_visit": appsql.parse_choice("drip", "planting"),
        "future_appointment_status": appsql.parse_text,
    }

    host: OpenEmrHost
    setup: OpenEmrSetup
    clinic: ClinicHabits
    _own_pids: frozenset[int] = frozenset()  # the source's live canaries (set_own_rows), kept across refresh()
    _day_owed = 0  # canaries planted by this seeder whose day's visit waits for the drip run (notices)

    def _prepare(self) -> None:
        target = self._ready()
        self.setup = read_setup(target, self.source.name)  # refuses an unsupported version first
        self._check_facility()
        self._check_appointment_status()
        self.host = read_host(target, self.settings, self.source.name)
        if self._own_pids:
            self.host = replace(self.host, own_pids=self._own_pids, own_rows=self._own_rows(self._own_pids))
        self.choices = resolve_choices(self.host, self.settings)
        reflected = {name: target.table(name) for name in _WRITTEN}
        self.tables = {name: table for name, table in reflected.items() if table is not None}
        self._dupscore_query = dupscore_query(self.tables["patient_data"])
        self.clinic = read_clinic(target)
        if self.setup.on("erx_enable"):
            # A medication row NewCrop has not seen yet is uploaded to it: never write one there.
            self.clinic.issues.pop("medication", None)
            self.clinic.later_visits = [replace(v, issues={k: rows for k, rows in v.issues.items() if k != "medication"})
                                        for v in self.clinic.later_visits]
        self._rnd = random.SystemRandom()

    def notices(self) -> list[str]:
        if not self._day_owed:
            return []
        return [f"{self._day_owed} canar{'y' if self._day_owed == 1 else 'ies'}: the registration day's visit is "
                "written by `canary drip run` once its moment has come (minutes to hours after planting); keep "
                "the drip timer running (docs/drip.md), or give the source `--set day_visit=planting`"]

    def set_own_rows(self, refs: set[tuple[str, frozenset]]) -> None:
        pids = frozenset(int(dict(key)["pid"]) for table, key in refs
                         if table == "patient_data" and str(dict(key).get("pid", "")).isdigit())
        self._own_pids = pids
        self.host = replace(self.host, own_pids=pids, own_rows=self._own_rows(pids))

    def _own_rows(self, pids: frozenset[int]) -> tuple[dict[str, Any], ...]:
        table = self.tables["patient_data"]
        return tuple(self._read_rows(sa.select(table).where(table.c.pid.in_(sorted(pids))))) if pids else ()

    def check_access(self) -> list[str]:
        wanted = needs(self.written_tables)
        if self.clinic.encounters and self._ready().table("sequences") is not None:
            wanted["sequences"] = ("SELECT", "UPDATE")  # GenID("sequences"): encounter numbers
        return access_problems(self._ready(), wanted)

    def _check_appointment_status(self) -> None:
        status, options = self.settings["future_appointment_status"], self._ready().table("list_options")
        if status == "site" or options is None:
            return
        known = {r["option_id"] for r in self._read_rows(
            sa.select(options.c.option_id).where(options.c.list_id == "apptstat"))} or {"x"}
        if status not in known:
            raise ConfigError(f"source '{self.source.name}': option future_appointment_status={status!r}: not a "
                              f"status of this site's apptstat list (use site or one of {', '.join(sorted(known))})")

    def _check_facility(self) -> None:
        facility_id, facility = self.settings["facility_id"], self._ready().table("facility")
        if facility_id is not None and facility is not None and not self._read_rows(
                sa.select(facility.c.id).where(facility.c.id == facility_id)):
            raise ConfigError(f"source '{self.source.name}': option facility_id={facility_id}: no such facility")

    # -- planting ------------------------------------------------------------
    def _numbers(self) -> Numbers:
        target = self._ready()
        patient_data = self.tables["patient_data"]
        with target.engine.connect() as conn:
            top, latest = conn.execute(sa.select(sa.func.max(patient_data.c.pid),
                                                 sa.func.max(patient_data.c.regdate))).one()
            # Only the portal account name needs the next id.
            next_id = _next_auto_increment(conn, patient_data) if self.choices.portal != "no" else 0
            log = self.tables["log"]
            # The patient each possible creator has open in its session: its last log row's (the creator is
            # drawn per canary in build_rows, so each of them is read).
            users = {u.username for u in self.host.creators} | ({self.host.user.username} if self.host.user else set())
            previous_by_user = {}
            for username in sorted(users):
                # The last patient whose record this user saved (the inserts after the patient's own name it):
                # chart views are left out, ours among them (a check-in view we wrote never was in the
                # user's real session).
                named = sa.select(log.c.patient_id).where(log.c.user == username, log.c.patient_id.is_not(None))
                previous_by_user[username] = int(conn.execute(
                    named.where(log.c.event == "patient-record-insert").order_by(log.c.id.desc()).limit(1)).scalar()
                    or conn.execute(named.order_by(log.c.id.desc()).limit(1)).scalar() or 0)
            previous = previous_by_user.get(self.host.user.username if self.host.user else "", 0)
            encounter = _next_encounter(conn) if "form_encounter" in self.tables else 0
        # This machine's clock in the database's time zone, as OpenEMR's PHP date() stamps rows (the
        # web server's clock, not the database's); drip decides the moment, and tests can freeze it.
        now = self._database_time(datetime.now(timezone.utc))
        return Numbers(pid=(top or 0) + 1, next_id=next_id, now=now, previous_pid=int(previous or 0), clock=now,
                       previous_by_user=previous_by_user,
                       latest=latest, encounter=encounter)

    def _rows(self, identity: Identity, *, dry_run: bool, numbers: Numbers | None = None,
              score: bool = True) -> list:
        numbers = numbers or self._numbers()
        if numbers.clock is not None and numbers.schedule is None:
            numbers = self._scheduled(identity, numbers, take_number=not dry_run)
        # A dry run shows a hash of the right shape: bcrypt is slow on purpose.
        hasher = _hash_shape if dry_run else portal_password_hash
        dupscore = (lambda values: self._dupscore(values, numbers.pid)) if score else (lambda values: 0)
        clock = numbers.clock or numbers.now

        def new_uuid(when: datetime) -> bytes:
            # The uuid's time is the row's, as if OpenEMR had made it then.
            return comb_uuid(time.time() - (clock - when).total_seconds())

        return build_rows(identity, self.host, self.setup, self.choices, numbers, self.tables, dupscore=dupscore,
                          new_uuid=new_uuid, hash_password=hasher, clinic=self.clinic, rnd=self._rnd)

    def _scheduled(self, identity: Identity, numbers: Numbers, *, take_number: bool) -> Numbers:
        """The numbers with this canary's day drawn, the registration dated before its events."""
        plan = draw_schedule(self.clinic, self._rnd, numbers.clock, numbers.latest,
                             sex="Male" if identity.sex is Sex.MALE else "Female", portal=self.choices.portal,
                             footprint=self.settings["footprint"],
                             defer_visit=self.settings["footprint"] and self.settings["day_visit"] == "drip",
                             born=identity.birth_date)
        encounter = numbers.encounter
        if plan.encounter is not None and take_number:
            encounter = self._take_encounter_number()
        return replace(numbers, now=plan.registered, schedule=plan, encounter=encounter)

    def _take_encounter_number(self) -> int:
        """The next number of OpenEMR's sequences table, taken for good, as ADOdb's GenID("sequences") takes it."""
        try:
            with self._ready().engine.begin() as conn:
                conn.execute(sa.text("UPDATE sequences SET id = LAST_INSERT_ID(id + 1)"))
                return int(conn.execute(sa.text("SELECT LAST_INSERT_ID()")).scalar())
        except sa.exc.StatementError as err:
            raise SourceError(f"source '{self.source.name}': taking an encounter number from sequences failed: "
                              f"{str(getattr(err, 'orig', err)).splitlines()[0][:200]}") from None

    def add_event(self, identity: Identity, placement: Placement, when: datetime) -> Placement | None:
        """A later visit drawn from the site's own (seeders/openemr/later.py), dated just before ``when``."""
        patient = next((r for r in placement.rows if r["table"] == "patient_data"), None)
        pid = patient["key"]["pid"] if patient else None
        if pid is None or not self.settings["footprint"]:
            return None
        when = self._database_time(when)
        # Registered with 'Allow Patient Portal' for credentials that come later: handed out at this visit,
        # unless their own moment was drawn at planting (add_due hands them out then).
        portal_due = self._portal_due(patient, placement) and \
            not isinstance(placement.extra.get(PORTAL_KEY), (int, float))
        plan = later_visit(self.clinic, self._rnd, when, "Male" if identity.sex is Sex.MALE else "Female",
                           registered=_stamp(patient["values"].get("regdate")), since=last_dated(placement.rows),
                           first=_first_weeks_due(placement, patient),
                           portal_due=portal_due, born=identity.birth_date)
        if plan is None:
            return None
        portal, user = (self._later_portal(identity, patient, int(pid), plan.portal_at)
                        if plan.portal_at is not None else (None, ""))
        number = self._take_encounter_number()
        rows = self._fit(visit_rows(plan, int(pid), number, self.clinic, self.tables, self._rnd, when,
                                    appointment_status=self.settings["future_appointment_status"],
                                    log_views=not self.setup.on("enable_auditlog_encryption"),
                                    portal=portal, portal_user=user,
                                    allergies=self._allergies_due(identity, placement, int(pid), plan)))
        try:
            placed = self._ready().insert(rows)
        except SourceError:
            self._give_back([number])
            raise
        return self._next_due(self._saved_again(replace(placement, rows=tuple(placement.rows) + tuple(placed)),
                                                int(pid), when))

    def _credentials_only(self, identity: Identity, placement: Placement, patient: dict[str, Any], pid: int,
                          when: datetime) -> Placement:
        """The first drip event of a canary registered for later credentials: the front desk hands them out
        (the account and its ``patient-access`` log row), at the moment drawn at planting (``_portal_later``),
        never after ``when``."""
        registered = _stamp(patient["values"].get("regdate")) or when
        at = min(when, max(registered + timedelta(seconds=60),
                           registered + timedelta(seconds=float(placement.extra[PORTAL_KEY]))))
        portal, user = self._later_portal(identity, patient, pid, at.replace(microsecond=0))
        rows = [portal]
        if not self.setup.on("enable_auditlog_encryption") and "log" in self.tables and \
                "log_comment_encrypt" in self.tables:
            rows = auditlog.credentials_logged(rows, auditlog.LogContext(user, self.clinic.groupname, pid), pid)
        placed = self._ready().insert(self._fit(rows))
        return self._saved_again(replace(placement, rows=tuple(placement.rows) + tuple(placed)), pid, when)

    def _saved_again(self, placement: Placement, pid: int, when: datetime) -> Placement:
        """The record's later save (``date``, ``last_updated``, ``updated_by``), for a record not saved
        again on its registration day: drawn at the first later visit at the site's rate (rows.second_save),
        made once its moment has come, dated then. Our own row only; retire deletes it as before."""
        index, patient = next((n, r) for n, r in enumerate(placement.rows) if r["table"] == "patient_data")
        values, extra = dict(patient["values"]), dict(placement.extra)
        if SAVE_KEY not in extra:
            if values.get("date") != values.get("regdate"):
                return placement  # saved again on its registration day already
            drawn = second_save(self.host.patients, self._rnd)
            extra[SAVE_KEY] = list(drawn) if drawn else 0
        pending, registered = extra[SAVE_KEY], _stamp(values.get("regdate"))
        if not isinstance(pending, list) or registered is None or registered + timedelta(seconds=pending[0]) > when:
            return replace(placement, extra=extra)
        at = (registered + timedelta(seconds=pending[0])).replace(microsecond=0)
        changed = {"date": at, "last_updated": at}
        if pending[1] is not None and "updated_by" in values:
            changed["updated_by"] = pending[1]
        table = self.tables["patient_data"]
        with self._ready().engine.begin() as conn:
            conn.execute(table.update().where(table.c.pid == pid).values(**changed))
        values.update({name: to_json(value) for name, value in changed.items()})
        rows = list(placement.rows)
        rows[index] = {**patient, "values": values}
        extra[SAVE_KEY] = -1  # made
        return replace(placement, rows=tuple(rows), extra=extra)

    def _allergies_due(self, identity: Identity, placement: Placement, pid: int, plan):
        """The allergies a squeezed registration left out (seeders/openemr/rows.py), entered by the
        clinician at this visit; None when there are none to enter."""
        entered = any(r["table"] == "lists" and r["values"].get("type") == "allergy" for r in placement.rows)
        if entered or not self.choices.allergies or not writes_allergies(identity, self.host):
            return None
        clinician = plan.schedule.clinician.username if plan.schedule.clinician else None
        return lambda registry, at, rows: allergy_rows(identity, self.host, pid, at, self.tables, registry, rows,
                                                       user=clinician)

    def _later_portal(self, identity: Identity, patient: dict[str, Any], pid: int,
                      at: datetime) -> tuple[RowPlan, str]:
        """The credentials row handed out at a later visit, and the username that logs it (the canary's
        creator, the front desk). The password is the identity's, from our token scheme, as at registration."""
        table = self.tables["patient_data"]
        row_id = self._read_rows(sa.select(table.c.id).where(table.c.pid == pid))
        numbers = Numbers(pid=pid, next_id=int(row_id[0]["id"]) if row_id else 0, now=at)
        values = portal_values(identity, self.host, self.choices, patient["values"], numbers,
                                self.tables["patient_access_onsite"], portal_password_hash)
        if "date_created" in self.tables["patient_access_onsite"].c:
            values["date_created"] = at
        creator = patient["values"].get("created_by")
        user = next((u.username for u in self.host.creators if u.id == creator), None) or \
            (self.host.user.username if self.host.user else "")
        return RowPlan("patient_access_onsite", ("id",), values, generated={"id": Generated(AUTOINCREMENT)},
                       alias="portal"), user

    def _database_time(self, when: datetime) -> datetime:
        """``when`` as OpenEMR writes times: naive, in the database server's time zone."""
        if when.tzinfo is None:
            return when
        with self._ready().engine.connect() as conn:
            local, utc = conn.execute(sa.select(sa.func.now(), sa.func.utc_timestamp())).one()
        offset = timedelta(seconds=round((local - utc).total_seconds() / 60) * 60)
        return (when.astimezone(timezone.utc).replace(tzinfo=None) + offset).replace(microsecond=0)

    def retire(self, placement: Placement) -> None:
        super().retire(placement)
        # Give the encounter number back if no encounter took the next one since (else: a gap, as
        # when OpenEMR deletes an encounter).
        self._give_back([row["values"].get("encounter") for row in placement.rows
                         if row["table"] == "form_encounter"])

    def _give_back(self, numbers: list[int]) -> None:
        """Return encounter numbers to sequences when none was taken after them."""
        if numbers and self._ready().table("sequences") is not None:
            with self._ready().engine.begin() as conn:
                for number in sorted(numbers, reverse=True):
                    conn.execute(sa.text("UPDATE sequences SET id = id - 1 WHERE id = :n"), {"n": number})

    def check_fits(self, identities: Iterable[Identity]) -> None:
        # The numbers only shape the values (pid, account name): read them once for the batch.
        numbers = self._numbers()
        for n, identity in enumerate(identities):
            numbered = replace(numbers, pid=numbers.pid + n, next_id=numbers.next_id + n)
            self._fit(self._rows(identity, dry_run=True, numbers=numbered, score=False))

    def _dupscore(self, values: dict[str, Any], pid: int) -> int:
        with self._ready().engine.connect() as conn:
            return int(conn.execute(self._dupscore_query, dupscore_params(values, pid)).scalar() or 0)

    def plant(self, identity: Identity) -> Placement:
        target = self._ready()
        for attempt in range(_ATTEMPTS):
            numbers = self._numbers()
            if numbers.clock is not None:
                numbers = self._scheduled(identity, numbers, take_number=True)
            rows = self._fit(self._rows(identity, dry_run=False, numbers=numbers))
            pid = next(row.values["pid"] for row in rows if row.table == "patient_data")
            try:
                # The site's pace between two visits of a patient, for drip's later events (canary/planting/events.py).
                pace = {PACE_KEY: round(self.clinic.revisit_every)} if self.clinic.revisit_every else {}
                pace.update(self._owed(numbers, next(r.values for r in rows if r.table == "patient_data")))
                if any((row.alias or "").startswith(f"log_{BETWEEN_ALIAS}") for row in rows):
                    pace[BETWEEN_KEY] = True  # its first weeks' log rows are written already
                placement = self._next_due(Placement(rows=target.insert(rows), extra=pace))
                self._day_owed += DAY_KEY in pace
                return placement
            except SourceError:
                self._give_back([row.values["encounter"] for row in rows if row.table == "form_encounter"])
                # Only a patient created meanwhile with our pid is worth another try.
                if attempt + 1 == _ATTEMPTS or not self._pid_taken(pid):
                    raise
        raise AssertionError("unreachable")

    def _owed(self, numbers: Numbers, patient: dict[str, Any]) -> dict[str, Any]:
        """What the canary's record is owed after the planting moment, drawn now, for the drip run
        (``add_due``): the registration day's visit (``DAY_KEY``), credentials handed out days after
        (``PORTAL_KEY``: as long after registering as the site's own came), the record saved again
        (``SAVE_KEY``: as often and as long after as the site's records are)."""
        plan, owed = numbers.schedule, {}
        if plan is None or numbers.clock is None:
            return owed
        if plan.visit is not None:
            owed[DAY_KEY] = plan.visit
        if plan.portal_later and self.clinic.portal_later_delays:
            owed[PORTAL_KEY] = round(self._rnd.choice(self.clinic.portal_later_delays))
        if patient.get("date") == patient.get("regdate"):
            drawn = second_save(self.host.patients, self._rnd, self._spread())
            owed[SAVE_KEY] = list(drawn) if drawn else 0
        return owed

    def _spread(self) -> tuple[float, float] | None:
        """This canary's point of the source's R2 sequence (rows.canary_spread): the live canaries'
        count is its place, a hash of the first live canary's pid and registration its start (the
        same in every drip run, which each open a new seeder); None for the first: it draws its own."""
        own = sorted(self.host.own_pids)
        if not own:
            return None
        digest = hashlib.sha256(f"{own[0]}:{self._first_regdate(own[0])}".encode()).digest()
        start = (int.from_bytes(digest[:8], "big") / 2 ** 64, int.from_bytes(digest[8:16], "big") / 2 ** 64)
        return canary_spread(len(own), start)

    def _first_regdate(self, pid: int) -> str:
        row = next((r for r in self.host.own_rows if r.get("pid") == pid), None)
        return str(row.get("regdate")) if row else ""

    def _pending(self, placement: Placement) -> list[datetime]:
        """The moments (database time) of what the canary is still owed."""
        patient = next((r for r in placement.rows if r["table"] == "patient_data"), None)
        registered = _stamp(patient["values"].get("regdate")) if patient else None
        if registered is None:
            return []
        extra, moments = placement.extra, []
        day = extra.get(DAY_KEY)
        if isinstance(day, dict):
            moments.append(registered + timedelta(seconds=float(day.get("after") or 0)))
        if isinstance(extra.get(PORTAL_KEY), (int, float)) and self._portal_due(patient, placement):
            moments.append(registered + timedelta(seconds=max(60.0, float(extra[PORTAL_KEY]))))
        if isinstance(extra.get(SAVE_KEY), list):
            moments.append(registered + timedelta(seconds=float(extra[SAVE_KEY][0])))
        return moments

    def _next_due(self, placement: Placement) -> Placement:
        """The placement with ``DUE_KEY`` at the earliest moment still owed (UTC), or without it."""
        extra = {k: v for k, v in placement.extra.items() if k != DUE_KEY}
        pending = self._pending(placement)
        if pending:
            extra[DUE_KEY] = self._utc(min(pending)).isoformat()
        return replace(placement, extra=extra)

    def _portal_due(self, patient: dict[str, Any], placement: Placement) -> bool:
        return patient["values"].get("allow_patient_portal") == "YES" and self.choices.portal == "auto" and \
            not any(r["table"] == "patient_access_onsite" for r in placement.rows) and \
            "patient_access_onsite" in self.tables

    def add_due(self, identity: Identity, placement: Placement, when: datetime) -> Placement | None:
        """What the canary is owed by ``when`` (``_owed``), each at its own moment: the registration day's
        visit, credentials, the record's later save."""
        patient = next((r for r in placement.rows if r["table"] == "patient_data"), None)
        pid = patient["key"]["pid"] if patient else None
        registered = _stamp(patient["values"].get("regdate")) if patient else None
        if pid is None or registered is None:
            return None
        when = self._database_time(when)
        extra = dict(placement.extra)
        day = extra.get(DAY_KEY)
        if isinstance(day, dict) and registered + timedelta(seconds=float(day.get("after") or 0)) <= when:
            plan = deferred_visit(self.clinic, self._rnd, registered, day,
                                  "Male" if identity.sex is Sex.MALE else "Female", born=identity.birth_date)
            extra[DAY_KEY] = 0  # done (or nothing the site lets us learn a visit from)
            if plan is not None:
                number = self._take_encounter_number()
                rows = self._fit(visit_rows(LaterPlan(plan), int(pid), number, self.clinic, self.tables, self._rnd,
                                            when, appointment_status=self.settings["future_appointment_status"],
                                            log_views=not self.setup.on("enable_auditlog_encryption")))
                try:
                    placed = self._ready().insert(rows)
                except SourceError:
                    self._give_back([number])
                    raise
                placement = replace(placement, rows=tuple(placement.rows) + tuple(placed))
            placement = replace(placement, extra=extra)
        if isinstance(extra.get(PORTAL_KEY), (int, float)) and self._portal_due(patient, placement) and \
                registered + timedelta(seconds=max(60.0, float(extra[PORTAL_KEY]))) <= when:
            placement = self._credentials_only(identity, placement, patient, int(pid), when)
        return self._next_due(self._saved_again(placement, int(pid), when))

    def _utc(self, local: datetime) -> datetime:
        """A database time (naive, the server's zone) as UTC."""
        with self._ready().engine.connect() as conn:
            now_local, now_utc = conn.execute(sa.select(sa.func.now(), sa.func.utc_timestamp())).one()
        offset = timedelta(seconds=round((now_local - now_utc).total_seconds() / 60) * 60)
        return (local - offset).replace(tzinfo=timezone.utc)

    def _pid_taken(self, pid: int) -> bool:
        table = self.tables["patient_data"]
        return bool(self._read_rows(sa.select(table.c.pid).where(table.c.pid == pid)))

    # -- collisions and recovery -------------------------------------------
    def collides(self, identity: Identity) -> bool:
        table = self.tables["patient_data"]
        nir = sa.func.replace(table.c.ss, " ", "")
        names = {identity.last_name.lower(), identity.birth_name.lower()}
        surname = sa.or_(sa.func.lower(table.c.lname).in_(names),
                         *([sa.func.lower(table.c.birth_lname).in_(names)] if "birth_lname" in table.c else []))
        query = sa.select(table.c.pid).where(sa.or_(
            nir == identity.nir,
            sa.and_(surname, sa.func.lower(table.c.fname) == identity.first_name.lower(),
                    table.c.DOB == identity.birth_date),
        )).limit(1)
        return bool(self._read_rows(query))

    def locate(self, identity: Identity) -> Placement | None:
        """The rows of a patient planted for ``identity`` but never recorded (found by NIR, e-mail, or names,
        birth date and address: a record may have neither of the first two, as the site's patients it follows).

        What is found here is retired by `canary retire` and taken as ours by `canary verify`: names and a
        birth date alone could pick a real namesake born the same day, so the drawn street and postcode,
        always written, must match too."""
        table = self.tables["patient_data"]
        names = sa.and_(sa.func.lower(table.c.lname) == identity.last_name.lower(),
                        sa.func.lower(table.c.fname) == identity.first_name.lower(),
                        table.c.DOB == identity.birth_date,
                        sa.func.lower(table.c.street) == identity.address.line1.lower(),
                        table.c.postal_code == identity.address.postcode)
        for condition in (table.c.ss.in_([identity.nir, nir_spaced(identity.nir)]), table.c.email == identity.email,
                          names):
            found = self._read_rows(sa.select(table).where(condition).limit(2))
            if len(found) == 1:
                return Placement(rows=tuple(rows_of(found[0], self.tables, self._read_rows)))
        return None


def _first_weeks_due(placement: Placement, patient: dict[str, Any]) -> bool:
    """Whether the log rows of the patient's first weeks are still to write: not with its registration
    (``BETWEEN_KEY``), nor with an earlier later visit (an encounter after the registration day)."""
    if placement.extra.get(BETWEEN_KEY):
        return False
    registered = _stamp(patient["values"].get("regdate"))
    return not any(r["table"] == "form_encounter" and registered is not None and
                   (_stamp(r["values"].get("date")) or registered).date() > registered.date() for r in placement.rows)


def _stamp(value: Any) -> datetime | None:
    """A placement's stored time (ISO text) back as a datetime."""
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _next_encounter(conn: sa.Connection) -> int:
    """The number GenID("sequences") would give next (a dry run takes none)."""
    try:
        return int(conn.execute(sa.text("SELECT id FROM sequences")).scalar() or 0) + 1
    except sa.exc.DBAPIError:
        return 0


def _hash_shape(password: str, cost: int) -> str:
    return f"$2y${cost:02d}$" + "." * 53


def _next_auto_increment(conn: sa.Connection, table: sa.Table) -> int:
    """The id the database gives the next row (the portal account name carries it)."""
    top = conn.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0
    if conn.dialect.name not in ("mysql", "mariadb"):
        return top + 1
    version = conn.dialect.server_version_info or ()
    if not getattr(conn.dialect, "is_mariadb", False) and version >= (8,):
        # MySQL 8 caches table statistics (AUTO_INCREMENT included) for a day by default.
        conn.exec_driver_sql("SET SESSION information_schema_stats_expiry = 0")
    counter = conn.execute(sa.text(
        "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"),
        {"t": table.name}).scalar()
    return max(top + 1, int(counter or 0))
