"""A later visit of a planted canary, for ``canary drip`` (``Seeder.add_event``).

Weeks or months after registering, a patient comes back. The visit is drawn
from one of the site's own recent visits after a registration day
(seeders/openemr/clinic.py, ``LaterVisit``), as the registration day is from
the site's first days: an encounter by one of the site's clinicians
(form_encounter + its forms row, a number from ``sequences``), vitals at the
site's rate, as many problems and medications as that visit had entered
(templates drawn among the site's later visits), a follow-up when that visit
booked one, and the audit ``log`` rows:

* the clinician opens the chart: setpid's ``view`` row
  (``PatientSessionUtil::setPid``), and as many more ``view`` rows as the
  drawn visit has log rows beyond it (the chart selected again during the
  visit; setpid logs each selection);
* the rows the site writes about a patient between visits (charts opened, a
  session still holding the patient: ``EventAuditLogger::auditSQLEvent``
  logs the session's pid), at the site's rate per day since the canary's
  previous rows: written as ``view`` rows by the staff who write them, at
  check-in, before the clinician's;
* portal credentials for a canary registered with 'Allow Patient Portal'
  but no account yet (the site's share of patients who get them after their
  first day: ``draw_schedule``), handed out during the visit
  (``PatientAccessOnsiteService::saveCredentials`` and its ungated
  ``patient-access`` log row).

Everything is dated just before ``when``, nothing after it, in the order of
the visit.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable

import sqlalchemy as sa

from seeders.openemr import auditlog
from seeders.openemr.clinic import BETWEEN_FIRST, ClinicHabits
from seeders.openemr.footprint import Schedule, follow_up, footprint_rows, vitals_like
from seeders.openemr.rows import UNCHECKED
from seeders.openemr.values import comb_uuid
from seeders.sql.rows import RowPlan

# The visit fits in the hour and a half before ``when``: check-in, the consultation, the issues entered
# during it, a follow-up booked and credentials handed out at its end.
_VISIT_START = (4200, 5400)  # seconds before ``when``
_CHECK_IN = (300, 1200)  # seconds before the consultation
_DURING = (180, 1200)  # issues, extra chart views: after the consultation starts
_AT_END = (1500, 2400)  # follow-up booked, credentials handed out
_MAX_BETWEEN = 12  # between-visit rows written at once, at most (a long gap since the last ones)


@dataclass(slots=True)
class LaterPlan:
    """A later visit: the schedule footprint_rows writes, and the log and portal rows around it."""

    schedule: Schedule
    between: list[tuple[str, datetime]] = field(default_factory=list)  # (user, when): views before the visit
    extra_views: list[datetime] = field(default_factory=list)  # the clinician's, during the visit
    portal_at: datetime | None = None  # portal credentials handed out then


def later_visit(clinic: ClinicHabits, rnd: random.Random, when: datetime, sex: str, *,
                registered: datetime | None = None, since: datetime | None = None, first: bool = False,
                portal_due: bool = False, born: date | None = None) -> LaterPlan | None:
    """The visit's plan, or None when the site has no clinician's encounter to learn from.

    ``registered``, ``since``: the canary's registration and its previous dated row (between-visit rows
    accrue from there); ``first``: the canary's first later visit (it brings the rows of the first
    BETWEEN_FIRST); ``portal_due``: the canary was registered for credentials it has not been given yet."""
    if not clinic.clinicians or not clinic.encounters:
        return None
    seen = when - timedelta(seconds=rnd.randint(*_VISIT_START))
    plan = Schedule(registered=seen, clinician=rnd.choice(clinic.clinicians), encounter=seen,
                    encounter_template=rnd.choice(clinic.encounters))
    same_sex = vitals_like(clinic, sex, born, when)
    if same_sex and rnd.random() < clinic.vitals_share:
        plan.vitals = seen + timedelta(seconds=rnd.randint(120, 600))
        plan.vitals_template = rnd.choice(same_sex)
    later = LaterPlan(plan)
    visit = rnd.choice(clinic.later_visits) if clinic.later_visits else None
    if visit is not None:
        for kind, entered in visit.issues.items():
            pool = [row for v in clinic.later_visits for row in v.issues.get(kind, ())]
            plan.issues += [(rnd.choice(pool), seen + timedelta(seconds=rnd.randint(*_DURING))) for _ in entered]
        plan.issues.sort(key=lambda pair: pair[1])
        if visit.appointment is not None:
            template = rnd.choice([v.appointment for v in clinic.later_visits if v.appointment is not None])
            plan.appointment = follow_up(template, seen + timedelta(seconds=rnd.randint(*_AT_END)))
        # The site's visit opened the chart this many times (setpid's 'view' rows); the first is written above.
        extra = visit.log_rows - 1
        later.extra_views = sorted(seen + timedelta(seconds=rnd.randint(*_DURING)) for _ in range(max(0, extra)))
    if registered is not None and clinic.between_log_users:
        count = rnd.choice(clinic.between_first) if first and clinic.between_first else 0
        start = max(since or registered, registered + BETWEEN_FIRST)
        days = max(0.0, (seen - start).total_seconds() / 86400)
        count = min(_MAX_BETWEEN, count + _poisson(clinic.between_log_rate * days, rnd))
        check_in = seen - timedelta(seconds=rnd.randint(*_CHECK_IN))
        later.between = [(rnd.choice(clinic.between_log_users), check_in + timedelta(seconds=n))
                         for n in range(count)]
    if portal_due:
        later.portal_at = seen + timedelta(seconds=rnd.randint(*_AT_END))
    return later


def _poisson(mean: float, rnd: random.Random) -> int:
    """A Poisson draw (Knuth's method: the means here are small)."""
    limit, count, product = math.exp(-mean), 0, rnd.random()
    while product > limit:
        count += 1
        product *= rnd.random()
    return count


def visit_rows(later: LaterPlan, pid: int, number: int, clinic: ClinicHabits, tables: dict[str, sa.Table],
               rnd: random.Random, clock: datetime, *, appointment_status: str, log_views: bool = True,
               portal: RowPlan | None = None, portal_user: str = "",
               allergies: Callable[[Callable[[str, str, datetime], bytes], datetime, list[RowPlan]], None] | None = None,
               ) -> list[RowPlan]:
    """The rows of the visit, in the order they happen; ``portal``: the credentials row to hand out;
    ``allergies(registry, at, rows)``: appends the allergies the clinician enters during the visit."""
    def registry(alias: str, table_name: str, at: datetime, into: list[RowPlan]) -> bytes:
        raw = comb_uuid(time.time() - (clock - at).total_seconds())
        values: dict[str, Any] = {"uuid": raw, "table_name": table_name, "table_id": "id", "table_vertical": "",
                                  "couchdb": "", "document_drive": 0, "mapped": 0, "created": at}
        into.append(RowPlan("uuid_registry", ("uuid",),
                            {k: v for k, v in values.items() if k in tables["uuid_registry"].c},
                            alias=alias, unchecked=UNCHECKED["uuid_registry"]))
        return raw

    logging = log_views and "log" in tables and "log_comment_encrypt" in tables
    plan = later.schedule
    rows: list[RowPlan] = []
    if logging:
        for n, (user, at) in enumerate(later.between):
            rows += auditlog.log_rows(f"between_{n}", at, "view", "view",
                                      auditlog.LogContext(user, clinic.groupname, pid), b"", pid)
    timed: list[tuple[datetime, list[RowPlan]]] = [
        (plan.encounter, footprint_rows(plan, pid, number, clinic, tables, registry, rnd, appointment_status,
                                        log_views=log_views))]
    if logging:
        clinician = auditlog.LogContext(plan.clinician.username, clinic.groupname, pid)
        timed += [(at, auditlog.log_rows(f"visit_view_{n}", at, "view", "view", clinician, b"", pid))
                  for n, at in enumerate(later.extra_views)]
    if portal is not None and later.portal_at is not None:
        given = [portal]
        if logging:
            given = auditlog.credentials_logged(given, auditlog.LogContext(portal_user, clinic.groupname, pid), pid)
        timed.append((later.portal_at, given))
    if allergies is not None and plan.encounter is not None:
        entered_at = plan.encounter + timedelta(seconds=rnd.randint(*_DURING))
        entered: list[RowPlan] = []
        allergies(lambda alias, table_name, at: registry(alias, table_name, at, entered), entered_at, entered)
        timed.append((entered_at, entered))
    for _at, part in sorted(timed, key=lambda pair: pair[0]):
        rows += part
    return rows


def last_dated(placement_rows: Any) -> datetime | None:
    """The latest log date among a placement's rows (the canary's previous event)."""
    dates = []
    for row in placement_rows:
        if row["table"] == "log" and row["values"].get("date"):
            try:
                dates.append(datetime.fromisoformat(str(row["values"]["date"])))
            except ValueError:
                continue
    return max(dates, default=None)

