"""What happens to this site's new patients on the day they register, learnt from its recent ones.

Read only. For the 200 most recent patients: how many were seen in an
encounter within the day of their registration, and how long after it; by
which clinician; how many of those encounters have vitals; which problems
and medications were entered that day; how many booked a follow-up
appointment and how far ahead; how many got portal credentials, and how long
after registering. Each canary then draws from these distributions (a random
real row as the template of the categorical fields, not the modal one).

And for the later visits ``canary drip`` adds (seeders/openemr/later.py),
from the site's 200 most recent encounters after a registration day: what
each visit carried (the problems and medications entered that day, a
follow-up booked that day, the audit ``log`` rows of the patient that day);
from the patients registered before the last quarter, how often they came
back (days followed per later visit) and how many got portal credentials
later than their first day,
and how many ``log`` rows name a patient outside its registration and visit
days (charts opened between visits), per day of the patient's life.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from seeders.sql.target import SqlTarget

SAMPLE = 200
SAME_DAY = timedelta(hours=12)  # events written at plant time happen within this of registration


@dataclass(frozen=True, slots=True)
class Clinician:
    id: int
    username: str


@dataclass(frozen=True, slots=True)
class LaterVisit:
    """One of the site's visits after its patient's registration day, and what was entered during it."""

    issues: dict[str, tuple[dict[str, Any], ...]]  # type -> the lists rows entered that day
    appointment: dict[str, Any] | None  # a follow-up booked that day
    log_rows: int  # 'view' rows naming the patient that day (the chart opened, at least once, where logged)


@dataclass(slots=True)
class ClinicHabits:
    patients: int = 0  # recent patients looked at
    encounter_delays: list[float] = field(default_factory=list)  # seconds after regdate, same-day encounters
    encounters: list[dict[str, Any]] = field(default_factory=list)  # recent form_encounter rows (templates)
    clinicians: list[Clinician] = field(default_factory=list)  # one per recent encounter (weights)
    date_only: bool = True  # form_encounter.date written as the day (00:00:00), as the UI date picker does
    groupname: str = "Default"
    vitals_share: float = 0.0  # of encounters with a vitals form
    vitals: list[dict[str, Any]] = field(default_factory=list)  # recent form_vitals rows, joined with sex
    issues: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # type -> same-day rows of recent pids
    appointment_share: float = 0.0  # of recent patients who booked a follow-up the day they registered
    appointments: list[dict[str, Any]] = field(default_factory=list)  # those appointments (templates)
    portal_delays: list[float] = field(default_factory=list)  # seconds from regdate to portal account
    allergy_delays: list[float] = field(default_factory=list)  # seconds from regdate to the first allergy entered
    has_sequences: bool = False
    later_visits: list[LaterVisit] = field(default_factory=list)  # the site's recent visits after day one
    revisit_every: float = 0.0  # seconds: days followed / visits after day one, settled recent patients
    portal_later_share: float = 0.0  # of older recent patients: portal credentials after their first day
    portal_later_delays: list[float] = field(default_factory=list)  # seconds from regdate, those accounts
    between_first: list[int] = field(default_factory=list)  # per patient: such rows in its first BETWEEN_FIRST
    between_log_rate: float = 0.0  # log rows per patient-day outside registration and visit days, after that
    between_log_users: list[str] = field(default_factory=list)  # who wrote them (one per row: weights)

    def share(self, count: int) -> float:
        return count / self.patients if self.patients else 0.0


def read_clinic(target: SqlTarget) -> ClinicHabits:
    tables = {n: target.table(n) for n in ("patient_data", "form_encounter", "forms", "form_vitals", "lists",
                                           "openemr_postcalendar_events", "patient_access_onsite", "users",
                                           "sequences")}
    habits = ClinicHabits(has_sequences=tables["sequences"] is not None)
    pd = tables["patient_data"]
    with target.engine.connect() as conn:
        recent = {r.pid: r.regdate for r in conn.execute(
            sa.select(pd.c.pid, pd.c.regdate).order_by(pd.c.pid.desc()).limit(SAMPLE)) if r.regdate}
        habits.patients = len(recent)
        if not recent:
            return habits
        _encounters(conn, tables, recent, habits, target.table("log"))
        _vitals(conn, tables, habits)
        _issues(conn, tables["lists"], recent, habits)
        _appointments(conn, tables["openemr_postcalendar_events"], recent, habits)
        _portal(conn, tables["patient_access_onsite"], recent, habits)
        _later(conn, target.table("log"), tables, habits)
        _settled(conn, pd, tables["form_encounter"], tables["patient_access_onsite"], habits)
    return habits


def _after(regdate: datetime, when: Any) -> float | None:
    """Seconds from registration to ``when`` if within the same day window, else None."""
    if not isinstance(when, datetime):
        return None
    delay = (when - regdate).total_seconds()
    return delay if 0 <= delay <= SAME_DAY.total_seconds() else None


def _encounters(conn: sa.Connection, t: dict[str, sa.Table], recent: dict[int, datetime],
                habits: ClinicHabits, log: sa.Table | None = None) -> None:
    fe, forms, users = t["form_encounter"], t["forms"], t["users"]
    if fe is None or forms is None:
        return
    rows = [dict(r._mapping) for r in conn.execute(sa.select(fe).order_by(fe.c.id.desc()).limit(SAMPLE))]
    habits.encounters = rows
    dated = [r["date"] for r in rows if isinstance(r.get("date"), datetime)]
    habits.date_only = not dated or sum(d.time() == datetime.min.time() for d in dated) * 2 >= len(dated)
    first: dict[int, datetime] = {}
    for r in conn.execute(sa.select(fe.c.pid, sa.func.min(fe.c.date).label("first"))
                          .where(fe.c.pid.in_(list(recent))).group_by(fe.c.pid)):
        if r.first is not None:
            first[r.pid] = r.first
    opened = _chart_opened(conn, log, recent) if habits.date_only else {}
    for pid, when in first.items():
        # A date-only encounter on the registration day counts as seen that day, at the time its chart was
        # opened after the registration (setpid's 'view' log row), else at an unknown time.
        day = habits.date_only and when.date() == recent[pid].date()
        delay = _after(recent[pid], when) if not day else opened.get(pid)
        if day or delay is not None:
            habits.encounter_delays.append(delay if delay is not None else -1.0)
    # Who signs the encounter form: forms.user (username) of the 'newpatient' form, by provider.
    signed = conn.execute(sa.select(fe.c.provider_id, forms.c.user, forms.c.groupname)
                          .join(forms, sa.and_(forms.c.encounter == fe.c.encounter, forms.c.pid == fe.c.pid,
                                               forms.c.formdir == "newpatient"))
                          .order_by(fe.c.id.desc()).limit(SAMPLE)).all()
    names = {}
    if users is not None:
        names = {r.id: r.username for r in conn.execute(sa.select(users.c.id, users.c.username)
                                                        .where(users.c.username.is_not(None)))}
    for row in signed:
        if row.provider_id:
            habits.clinicians.append(Clinician(int(row.provider_id), row.user or names.get(row.provider_id, "")))
    groups = [r.groupname for r in signed if r.groupname]
    if groups:
        habits.groupname = max(set(groups), key=groups.count)


def _chart_opened(conn: sa.Connection, log: sa.Table | None, recent: dict[int, datetime]) -> dict[int, float]:
    """Seconds from each recent patient's registration to the first 'view' log row naming it later that day
    (the chart opened for the day's visit; the registration's own view is in its second)."""
    if log is None or not {"patient_id", "date", "event"} <= set(log.c.keys()):
        return {}
    opened: dict[int, float] = {}
    for r in conn.execute(sa.select(log.c.patient_id, log.c.date).where(log.c.event == "view",
                                                                         log.c.patient_id.in_(list(recent)))):
        registered = recent.get(r.patient_id)
        if not isinstance(r.date, datetime) or registered is None or r.date.date() != registered.date():
            continue
        delay = (r.date - registered).total_seconds()
        if delay >= 1 and (r.patient_id not in opened or delay < opened[r.patient_id]):
            opened[r.patient_id] = delay
    return opened


def _vitals(conn: sa.Connection, t: dict[str, sa.Table], habits: ClinicHabits) -> None:
    forms, vitals, pd = t["forms"], t["form_vitals"], t["patient_data"]
    if forms is None or vitals is None or not habits.encounters:
        return
    encounters = [(r["pid"], r["encounter"]) for r in habits.encounters]
    with_vitals = {(r.pid, r.encounter) for r in conn.execute(
        sa.select(forms.c.pid, forms.c.encounter).where(forms.c.formdir == "vitals", forms.c.deleted == 0,
                                                        forms.c.encounter.in_([e for _, e in encounters])))}
    habits.vitals_share = sum(e in with_vitals for e in encounters) / len(encounters)
    habits.vitals = [dict(r._mapping) for r in conn.execute(
        sa.select(vitals, pd.c.sex.label("patient_sex"), pd.c.DOB.label("patient_dob"))
        .join(pd, pd.c.pid == vitals.c.pid)
        .order_by(vitals.c.id.desc()).limit(SAMPLE))]


def _issues(conn: sa.Connection, lists: sa.Table | None, recent: dict[int, datetime], habits: ClinicHabits) -> None:
    if lists is None:
        return
    # The allergies of a new patient: entered how long after registering (by the front desk, or during the
    # visit: the site's own delays, whoever enters them).
    first: dict[int, datetime] = {}
    for r in conn.execute(sa.select(lists.c.pid, lists.c.date).where(lists.c.type == "allergy",
                                                                      lists.c.pid.in_(list(recent)))):
        if isinstance(r.date, datetime) and (r.pid not in first or r.date < first[r.pid]):
            first[r.pid] = r.date
    habits.allergy_delays = sorted(d for pid, when in first.items() if (d := _after(recent[pid], when)) is not None)
    for kind in ("medical_problem", "medication"):
        rows = [dict(r._mapping) for r in conn.execute(
            sa.select(lists).where(lists.c.type == kind, lists.c.pid.in_(list(recent))).order_by(lists.c.id))]
        habits.issues[kind] = [r for r in rows if _after(recent[r["pid"]], r.get("date")) is not None]


def _appointments(conn: sa.Connection, events: sa.Table | None, recent: dict[int, datetime],
                  habits: ClinicHabits) -> None:
    if events is None:
        return
    rows = [dict(r._mapping) for r in conn.execute(
        sa.select(events).where(events.c.pc_pid.in_([str(p) for p in recent])).order_by(events.c.pc_eid))]
    booked = []
    for row in rows:
        regdate = recent.get(int(row["pc_pid"]))
        if regdate and _after(regdate, row.get("pc_time")) is not None and row["pc_eventDate"] > regdate.date():
            booked.append(row)
    habits.appointments = booked
    habits.appointment_share = habits.share(len({r["pc_pid"] for r in booked}))


def _portal(conn: sa.Connection, onsite: sa.Table | None, recent: dict[int, datetime], habits: ClinicHabits) -> None:
    if onsite is None or "date_created" not in onsite.c:
        return
    for r in conn.execute(sa.select(onsite.c.pid, onsite.c.date_created).where(onsite.c.pid.in_(list(recent)))):
        delay = _after(recent[r.pid], r.date_created) if r.pid in recent else None
        if delay is not None:
            habits.portal_delays.append(delay)


# Rows about a patient between visits come mostly soon after registering (a session still holding the new
# patient, the chart reopened to complete it): counted per patient over this window, per day after it.
BETWEEN_FIRST = timedelta(days=90)
# A patient registered within this of the site's latest registration may not have had its portal account, or
# come back, yet.
PORTAL_SETTLED = timedelta(days=90)


def _later(conn: sa.Connection, log: sa.Table | None, t: dict[str, sa.Table], habits: ClinicHabits) -> None:
    """What the site's recent visits after a registration day carried, its revisit pace, and the log rows
    naming a patient on days without a visit (read from the patients of the recent encounters)."""
    fe, pd, lists, events = t["form_encounter"], t["patient_data"], t["lists"], t["openemr_postcalendar_events"]
    if fe is None or not habits.encounters:
        return
    pids = sorted({int(r["pid"]) for r in habits.encounters if r.get("pid")})
    regdates = {r.pid: r.regdate for r in conn.execute(sa.select(pd.c.pid, pd.c.regdate).where(pd.c.pid.in_(pids)))
                if isinstance(r.regdate, datetime)}
    visits: dict[int, list[datetime]] = {}
    for r in conn.execute(sa.select(fe.c.pid, fe.c.date).where(fe.c.pid.in_(pids)).order_by(fe.c.date)):
        if isinstance(r.date, datetime):
            visits.setdefault(int(r.pid), []).append(r.date)
    issues: dict[tuple[int, Any], dict[str, list[dict[str, Any]]]] = {}
    if lists is not None:
        for r in conn.execute(sa.select(lists).where(lists.c.pid.in_(pids),
                                                     lists.c.type.in_(("medical_problem", "medication")))
                              .order_by(lists.c.id)):
            row = dict(r._mapping)
            if isinstance(row.get("date"), datetime):
                issues.setdefault((int(row["pid"]), row["date"].date()), {}).setdefault(row["type"], []).append(row)
    booked: dict[tuple[int, Any], dict[str, Any]] = {}
    if events is not None:
        for r in conn.execute(sa.select(events).where(events.c.pc_pid.in_([str(p) for p in pids]))
                              .order_by(events.c.pc_eid)):
            row = dict(r._mapping)
            made = row.get("pc_time")
            if isinstance(made, datetime) and row.get("pc_eventDate") and row["pc_eventDate"] > made.date():
                booked.setdefault((int(row["pc_pid"]), made.date()), row)
    # The log rows naming these patients, per (patient, day): (user, event, time).
    logged: dict[tuple[int, Any], list[tuple[str, str, datetime]]] = {}
    if log is not None:
        for r in conn.execute(sa.select(log.c.patient_id, log.c.date, log.c.user, log.c.event)
                              .where(log.c.patient_id.in_(pids))):
            if isinstance(r.date, datetime):
                logged.setdefault((int(r.patient_id), r.date.date()), []).append((r.user or "", r.event, r.date))
    for row in habits.encounters:
        pid, when = int(row["pid"]), row.get("date")
        if not isinstance(when, datetime) or pid not in regdates or when.date() <= regdates[pid].date():
            continue
        day = (pid, when.date())
        habits.later_visits.append(LaterVisit(
            issues={kind: tuple(rows) for kind, rows in issues.get(day, {}).items()},
            appointment=booked.get(day), log_rows=sum(event == "view" for _u, event, _t in logged.get(day, ()))))
    newest = conn.execute(sa.select(sa.func.max(pd.c.regdate))).scalar()
    if log is None or not isinstance(newest, datetime):
        return
    # The other rows naming a patient: not the registration's (its second), not a visit's chart views, not
    # the credentials' (the seeder writes those itself): a session still holding the patient (OpenEMR logs
    # the session's pid, EventAuditLogger::auditSQLEvent), the chart opened between visits.
    first = BETWEEN_FIRST.total_seconds() / 86400
    days, late = 0.0, 0
    for pid, registered in regdates.items():
        seen = {d.date() for d in visits.get(pid, ())}
        life = max(0.0, (newest - registered).total_seconds() / 86400)
        days += max(0.0, life - first)
        early = 0
        for (who, day), entries in logged.items():
            if who != pid:
                continue
            for user, event, at in entries:
                if at == registered or event == "patient-access" or (event == "view" and day in seen):
                    continue
                habits.between_log_users.append(user)
                if (at - registered).total_seconds() < BETWEEN_FIRST.total_seconds():
                    early += 1
                else:
                    late += 1
        if life >= first:  # followed for the whole window
            habits.between_first.append(early)
    habits.between_log_rate = late / days if days else 0.0


def _settled(conn: sa.Connection, pd: sa.Table, fe: sa.Table | None, onsite: sa.Table | None,
             habits: ClinicHabits) -> None:
    """On the 200 most recent patients registered at least PORTAL_SETTLED before the latest one (old enough to
    have come back, young enough to be today's habits): the site's revisit pace, as days followed per visit
    after the registration day (patients who never came back or left the practice count, as they do in the
    site's visit counts; a mean of gaps between visits would over-weigh the frequent visitors), and the share
    who got portal credentials after their first day, and how long after."""
    newest = conn.execute(sa.select(sa.func.max(pd.c.regdate))).scalar()
    if not isinstance(newest, datetime):
        return
    settled = {r.pid: r.regdate for r in conn.execute(
        sa.select(pd.c.pid, pd.c.regdate).where(pd.c.regdate <= newest - PORTAL_SETTLED)
        .order_by(pd.c.pid.desc()).limit(SAMPLE)) if isinstance(r.regdate, datetime)}
    if not settled:
        return
    if fe is not None:
        visits = sum(1 for r in conn.execute(sa.select(fe.c.pid, fe.c.date).where(fe.c.pid.in_(list(settled))))
                     if isinstance(r.date, datetime) and settled[r.pid].date() < r.date.date() <= newest.date())
        followed = sum((newest - registered).total_seconds() for registered in settled.values())
        habits.revisit_every = followed / visits if visits else 0.0
    if onsite is None or "date_created" not in onsite.c:
        return
    for r in conn.execute(sa.select(onsite.c.pid, onsite.c.date_created).where(onsite.c.pid.in_(list(settled)))):
        if isinstance(r.date_created, datetime) and _after(settled[r.pid], r.date_created) is None \
                and r.date_created > settled[r.pid]:
            habits.portal_later_delays.append((r.date_created - settled[r.pid]).total_seconds())
    habits.portal_later_share = len(habits.portal_later_delays) / len(settled)
