"""The clinical footprint of a canary's registration day, written as OpenEMR's screens write it.

Each canary draws, from what this site's recent patients went through on the
day they registered (seeders/openemr/clinic.py): an encounter by one of the
site's clinicians, with vitals, problems and medications entered during it, a
follow-up appointment, portal credentials. Every event comes after the
registration, and the registration is dated so that the last event is now:
nothing is in the future but the appointment's date. The rows:

* ``form_encounter`` (interface/forms/newpatient/save.php): the encounter
  number from ``sequences`` (ADOdb ``GenID("sequences")``), the date as the site writes it
  (the day, 00:00:00, from the UI date picker), ``provider_id`` the
  clinician, the categorical fields copied from one of the site's recent
  encounters drawn at random; then its ``forms`` row (``addForm``: form_name
  'New Patient Encounter', formdir 'newpatient', user = the clinician's
  username, groupname, authorized 1).
* ``form_vitals`` (interface/forms/vitals, C_FormVitals): in OpenEMR's
  storage units whatever the display setting: weight in lb, height and
  circumferences in inches, temperature in °F (vitals_report() converts on
  display); values from one of the site's vitals of a patient of the same
  sex, moved by a small random amount, BMI recomputed; its ``forms`` row
  (formdir 'vitals').
* ``lists`` 'medical_problem' / 'medication' rows, as the issue form does:
  title, diagnosis and coding copied from a random same-day issue of the site.
* ``openemr_postcalendar_events``: a follow-up booked at the end of the
  visit, ``pc_time`` = when it was booked, ``pc_eventDate`` ahead by the lead
  time of one of the site's own follow-ups, reminders off
  (``pc_sendalertsms``/``pc_sendalertemail`` 'NO').

What a row could set off, and how it is prevented: docs/seeders/openemr.md.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable

import sqlalchemy as sa

from seeders.openemr import auditlog
from seeders.openemr.clinic import Clinician, ClinicHabits
from seeders.sql.rows import AUTOINCREMENT, Generated, Ref, RowPlan

_ID = {"id": Generated(AUTOINCREMENT)}
# Statuses that take a future appointment off the front desk's work list (see the docs).
CANCELLED = "x"
# The day's events may be squeezed to this share of their drawn delays, no further.
MIN_SQUEEZE = 0.25
# How far each vital sign moves from the site's row it is drawn from (storage units: lb, in, °F...).
_JITTER = {"weight": 4.0, "height": 0.8, "bps": 8, "bpd": 5, "pulse": 6, "respiration": 2, "temperature": 0.4,
           "oxygen_saturation": 1.0, "waist_circ": 1.5, "head_circ": 0.3}
_WHOLE = {"bps", "bpd"}  # varchar columns typed as whole numbers
# What is copied from the site's row drawn as a template: categories, codes, the site's own staff and
# places. Free text, contact details and ids of another patient's row are never copied, only blanked.
_ENCOUNTER_COPIED = ("reason", "facility", "facility_id", "billing_facility", "pc_catid", "sensitivity", "pos_code",
                     "class_code", "referral_source", "supervisor_id", "shift", "encounter_type_code",
                     "encounter_type_description", "referring_provider_id", "ordering_provider_id",
                     "discharge_disposition")
_ENCOUNTER_BLANKED = ("invoice_refno", "voucher_number", "billing_note")
_ENCOUNTER_NULLED = ("external_id", "parent_encounter_id", "in_collection", "last_stmt_date", "date_end")
_ISSUE_COPIED = ("type", "subtype", "title", "diagnosis", "occurrence", "classification", "outcome", "verification",
                 "severity_al", "list_option_id", "erx_source", "erx_uploaded", "injury_part", "injury_type",
                 "injury_grade", "reinjury_id")
_ISSUE_BLANKED = ("comments", "referredby", "extrainfo", "destination", "reaction", "udi", "udi_data")
_ISSUE_NULLED = ("external_allergyid", "external_id")
_APPOINTMENT_COPIED = ("pc_catid", "pc_multiple", "pc_aid", "pc_gid", "pc_title", "pc_topic", "pc_informant",
                       "pc_duration", "pc_recurrtype", "pc_recurrspec", "pc_recurrfreq", "pc_startTime", "pc_endTime",
                       "pc_alldayevent", "pc_location", "pc_eventstatus", "pc_sharing", "pc_language", "pc_apptstatus",
                       "pc_prefcatid", "pc_facility", "pc_billing_location", "pc_room", "pc_comments", "pc_counter")
_APPOINTMENT_BLANKED = ("pc_hometext", "pc_conttel", "pc_contname", "pc_contemail", "pc_website", "pc_fee")


@dataclass(slots=True)
class Schedule:
    """When each event of the registration day happens (None: not for this canary)."""

    registered: datetime
    clinician: Clinician | None = None
    encounter: datetime | None = None
    vitals: datetime | None = None
    issues: list[tuple[dict[str, Any], datetime]] = field(default_factory=list)
    appointment: tuple[dict[str, Any], datetime, date] | None = None  # template, booked at, event date
    portal: datetime | None = None
    portal_later: bool = False  # portal credentials at a later visit (drip), allowed from registration
    allergies: datetime | None = None  # when the identity's allergies are entered (never the registration second)
    encounter_template: dict[str, Any] = field(default_factory=dict)
    vitals_template: dict[str, Any] = field(default_factory=dict)
    # Log rows naming the patient after its registration, outside its visits (a front-desk session still
    # holding the new patient): as many as the site's patients have in their first weeks, dated between the
    # registration and the clock; empty when there is no room (the first later visit brings them then).
    between: list[datetime] = field(default_factory=list)
    # The day's visit left to the drip run (draw_schedule's defer_visit): seconds after the registration,
    # and what it carries (vitals, appointment: bools; issues: type -> count); None: no visit that day.
    visit: dict[str, Any] | None = None


def draw_schedule(clinic: ClinicHabits, rnd: random.Random, clock: datetime, latest_registration: datetime | None,
                  *, sex: str, portal: str, footprint: bool, defer_visit: bool = False,
                  born: date | None = None) -> Schedule:
    """Draw this canary's day from the site's rates, then date it so that its last event is ``clock``.

    The events after the encounter are drawn first; the encounter's delay after the registration is then
    one of the site's delays that leaves the day room between the site's latest registration and the clock,
    when one does (registrations stay in pid order; squeezing the day would shorten every delay)."""
    room = (clock - latest_registration).total_seconds() if latest_registration is not None else None
    offsets: dict[str, float] = {}
    after: dict[str, float] = {}  # seconds after the encounter
    plan = Schedule(registered=clock)
    if footprint and clinic.clinicians and rnd.random() < clinic.share(len(clinic.encounter_delays)):
        plan.clinician = rnd.choice(clinic.clinicians)
        plan.encounter_template = rnd.choice(clinic.encounters)
        same_sex = vitals_like(clinic, sex, born, clock)
        if same_sex and rnd.random() < clinic.vitals_share:
            after["vitals"] = rnd.uniform(120, 600)
            plan.vitals_template = rnd.choice(same_sex)
    issues = []
    if footprint and plan.clinician:
        for rows in clinic.issues.values():
            by_patient: dict[Any, list] = {}
            for row in rows:
                by_patient.setdefault(row["pid"], []).append(row)
            # Entered during the visit: the share among the site's new patients seen that day.
            seen = max(1, len(clinic.encounter_delays))
            if by_patient and rnd.random() < min(1.0, len(by_patient) / seen):
                count = len(rnd.choice(list(by_patient.values())))
                issues += [(row, rnd.uniform(180, 1200)) for row in rnd.sample(rows, min(count, len(rows)))]
    if footprint and clinic.appointments and rnd.random() < clinic.appointment_share:
        template = rnd.choice(clinic.appointments)
        after["appointment"] = rnd.uniform(300, 1800)
    visit = 0.0
    if plan.clinician:
        # A date-only encounter's delay is unknown: somewhere in the next two hours.
        delays = [d if d >= 0 else rnd.uniform(600, 7200) for d in clinic.encounter_delays] or \
            [rnd.uniform(600, 7200)]
        tail = max([0.0, *after.values(), *(at for _, at in issues)])
        fits = [d for d in delays if defer_visit or room is None or d + tail <= room]
        visit = rnd.choice(fits or delays)
        if defer_visit:
            # The visit happens after the planting moment: the drip run writes it when its time has come
            # (Seeder.add_due, deferred_visit below); the registration is then at the planting moment,
            # at the hours the site registers its patients.
            kinds: dict[str, int] = {}
            for row, _at in issues:
                kinds[row["type"]] = kinds.get(row["type"], 0) + 1
            plan.visit = {"after": round(visit), "vitals": "vitals" in after,
                          "appointment": "appointment" in after, "issues": kinds}
            plan.clinician, plan.encounter_template, plan.vitals_template = None, {}, {}
            after, issues, visit = {}, [], 0.0
        else:
            offsets["encounter"] = visit
            offsets.update({name: visit + at for name, at in after.items()})
            issues = [(row, visit + at) for row, at in issues]
    elif "appointment" in after:  # booked by the front desk, no visit that day
        offsets["appointment"] = after["appointment"]
    # Allergies are entered as long after registering as the site's new patients have theirs (the front
    # desk, minutes after); without any to learn from, during the visit or a few minutes after registering.
    allergy_delays = clinic.allergy_delays
    if allergy_delays:
        offsets["allergies"] = max(1.0, rnd.choice(allergy_delays))
    else:
        offsets["allergies"] = visit + rnd.uniform(120, 900) if "encounter" in offsets else rnd.uniform(60, 600)
    same_day = clinic.share(len(clinic.portal_delays))
    wants_portal = portal == "yes" or (portal == "auto" and rnd.random() < same_day)
    # Most sites hand credentials out days or weeks after registering: those come with a later visit
    # (seeders/openemr/later.py), at the site's share of patients who got them after their first day.
    later = footprint and portal == "auto" and not wants_portal and same_day < 1 and \
        rnd.random() < clinic.portal_later_share / (1 - same_day)
    plan.portal_later = later
    if wants_portal:
        # Credentials are handed out after the registration, never in its second.
        offsets["portal"] = max(rnd.choice(clinic.portal_delays) if clinic.portal_delays else 0.0,
                                rnd.uniform(60, 900))
    span = max([0.0, *offsets.values(), *(at for _, at in issues)])
    scale = 1.0
    if latest_registration is not None and span and clock - timedelta(seconds=span) < latest_registration:
        # Keep registrations in pid order: squeeze the day between the last patient and now, a little;
        # with no room (canaries planted in a burst) the canary is only registered, like a walk-in
        # seen later. Drip planting leaves room.
        room = max(0.0, (clock - latest_registration).total_seconds())
        if room < MIN_SQUEEZE * span or room < 120:
            if portal != "yes":
                # Only registered, like a walk-in seen later; its allergies entered as soon after registering
                # as the site's are, when one of those delays fits (else they come with a later visit).
                fits = [d for d in allergy_delays if 1 <= d <= room]
                if fits:
                    entered = rnd.choice(fits)
                    squeezed = Schedule(registered=clock - timedelta(seconds=int(entered)), allergies=clock,
                                        portal_later=later)
                    squeezed.between = _between(clinic, rnd, squeezed.registered, clock)
                    return squeezed
                return Schedule(registered=clock, portal_later=later)
            # Credentials were asked for: registered as early as the pid order allows, credentials now.
            registered = min(clock, max(latest_registration, clock - timedelta(seconds=60)))
            return Schedule(registered=registered, portal=clock)
        scale = room / span
    registered = clock - timedelta(seconds=int(span * scale))
    plan.registered = registered

    def at(offset: float) -> datetime:
        return min(clock, registered + timedelta(seconds=max(1, int(offset * scale))))

    plan.encounter = at(offsets["encounter"]) if "encounter" in offsets else None
    plan.vitals = at(offsets["vitals"]) if "vitals" in offsets else None
    plan.issues = [(row, at(offset)) for row, offset in issues]
    if "appointment" in offsets:
        plan.appointment = follow_up(template, at(offsets["appointment"]))
    plan.portal = at(offsets["portal"]) if "portal" in offsets else None
    plan.allergies = at(offsets["allergies"])
    plan.between = _between(clinic, rnd, registered, clock)
    return plan


def deferred_visit(clinic: ClinicHabits, rnd: random.Random, registered: datetime, visit: dict[str, Any],
                   sex: str, born: date | None = None) -> Schedule | None:
    """The registration day's visit drawn at planting (``Schedule.visit``), as the drip run writes it once
    its time has come: the encounter ``visit["after"]`` seconds after the registration, by one of the
    site's clinicians, with the vitals, issues and follow-up drawn then, templates from the site's own."""
    if not clinic.clinicians or not clinic.encounters:
        return None
    seen = registered + timedelta(seconds=max(60, int(visit.get("after") or 0)))
    plan = Schedule(registered=registered, clinician=rnd.choice(clinic.clinicians), encounter=seen,
                    encounter_template=rnd.choice(clinic.encounters))
    same_sex = vitals_like(clinic, sex, born, registered)
    if visit.get("vitals") and same_sex:
        plan.vitals = seen + timedelta(seconds=rnd.randint(120, 600))
        plan.vitals_template = rnd.choice(same_sex)
    for kind, count in (visit.get("issues") or {}).items():
        rows = clinic.issues.get(kind) or []
        plan.issues += [(row, seen + timedelta(seconds=rnd.randint(180, 1200)))
                        for row in rnd.sample(rows, min(int(count), len(rows)))]
    plan.issues.sort(key=lambda pair: pair[1])
    if visit.get("appointment") and clinic.appointments:
        template = rnd.choice(clinic.appointments)
        plan.appointment = follow_up(template, seen + timedelta(seconds=rnd.randint(300, 1800)))
    return plan


def follow_up(template: dict[str, Any], booked: datetime) -> tuple[dict[str, Any], datetime, date]:
    """A follow-up appointment (``Schedule.appointment``) like the site's ``template``, booked at ``booked``
    for as many days ahead as the template was."""
    lead = max(1, (template["pc_eventDate"] - template["pc_time"].date()).days)
    return template, booked, booked.date() + timedelta(days=lead)


def vitals_like(clinic: ClinicHabits, sex: str, born: date | None, when: datetime) -> list[dict[str, Any]]:
    """The site's recent vitals of patients of the canary's sex and of about its age then (within 10
    years; 3 for a child: a child's weight is not an adult's), else of its sex, else any."""
    same_sex = [v for v in clinic.vitals if v.get("patient_sex") == sex] or clinic.vitals
    if born is None:
        return same_sex
    age = (when.date() - born).days / 365.25
    near = 3 if age < 18 else 10
    alike = [v for v in same_sex if isinstance(v.get("patient_dob"), date) and isinstance(v.get("date"), datetime)
             and abs((v["date"].date() - v["patient_dob"]).days / 365.25 - age) <= near]
    return alike or same_sex


def _between(clinic: ClinicHabits, rnd: random.Random, registered: datetime, clock: datetime) -> list[datetime]:
    """When the rows naming the new patient in its first weeks are written (``Schedule.between``)."""
    room = int((clock - registered).total_seconds())
    if not clinic.between_first or not clinic.between_log_users or room < 60:
        return []
    count = rnd.choice(clinic.between_first)
    return sorted(registered + timedelta(seconds=rnd.randint(60, room)) for _ in range(count))


def footprint_rows(plan: Schedule, pid: int, encounter_number: int, clinic: ClinicHabits,
                   tables: dict[str, sa.Table], registry: Callable[..., bytes],
                   rnd: random.Random, appointment_status: str, *, log_views: bool = True) -> list[RowPlan]:
    """The rows of the day's events, in the order OpenEMR writes them (each uuid registered just before).

    ``log_views``: write the 'view' log row of the chart opened for the visit (not where OpenEMR
    encrypts its log with a key the seeder does not have)."""
    rows: list[RowPlan] = []
    outer = registry

    def registry(alias: str, table_name: str, when: datetime) -> bytes:  # noqa: F811 - same, into rows
        return outer(alias, table_name, when, rows)
    if plan.encounter is not None and plan.clinician is not None:
        if log_views and "log" in tables and "log_comment_encrypt" in tables:
            # The clinician opens the chart to start the visit: setpid logs its ungated 'view' row
            # (PatientSessionUtil::setPid), as it does for every patient seen.
            rows += auditlog.log_rows("encounter_view", plan.encounter, "view", "view",
                                      auditlog.LogContext(plan.clinician.username, clinic.groupname, pid), b"", pid)
        rows += _encounter(plan, pid, encounter_number, clinic, tables, registry)
        if plan.vitals is not None:
            rows += _vitals(plan, pid, encounter_number, clinic, tables, registry, rnd)
    for n, (template, when) in enumerate(plan.issues):
        rows.append(_issue(template, when, pid, plan.clinician, clinic, tables["lists"], registry, n))
    if plan.appointment is not None:
        rows.append(_appointment(plan, pid, tables["openemr_postcalendar_events"], registry, appointment_status))
    return rows


def _encounter(plan: Schedule, pid: int, number: int, clinic: ClinicHabits, tables: dict[str, sa.Table],
               registry: Callable[[str, str, datetime], bytes]) -> list[RowPlan]:
    template, when = plan.encounter_template, plan.encounter
    day = datetime.combine(when.date(), datetime.min.time()) if clinic.date_only else when
    values = {name: template.get(name) for name in _ENCOUNTER_COPIED if name in template}
    values.update({name: _blank(template.get(name)) for name in _ENCOUNTER_BLANKED if name in template})
    values.update(dict.fromkeys(_ENCOUNTER_NULLED))  # a new encounter: not billed, no parent, no end yet
    values.update({"date": day, "onset_date": None if template.get("onset_date") is None else day, "pid": pid,
                   "encounter": number, "provider_id": plan.clinician.id, "last_update": when})
    if template.get("uuid") is not None:
        values["uuid"] = registry("uuid_encounter", "form_encounter", when)
    form = _form(day, number, "New Patient Encounter", "newpatient", pid, plan.clinician, clinic, "encounter")
    return [RowPlan("form_encounter", ("id",), _only(tables["form_encounter"], values), generated=dict(_ID),
                    alias="encounter", unchecked=frozenset({"last_update"})), RowPlan("forms", ("id",), _only(tables["forms"], form.values),
                                                generated=dict(_ID), refs=form.refs, alias="encounter_form")]


def _form(when: datetime, encounter: int, name: str, formdir: str, pid: int, clinician: Clinician,
          clinic: ClinicHabits, alias: str) -> RowPlan:
    """FormService::addForm: the forms row pointing at a form's own row."""
    return RowPlan("forms", ("id",), {"date": when, "encounter": encounter, "form_name": name, "pid": pid,
                                      "user": clinician.username, "groupname": clinic.groupname, "authorized": 1,
                                      "deleted": 0, "formdir": formdir, "therapy_group_id": None},
                   refs={"form_id": Ref(alias, "id")})


def _vitals(plan: Schedule, pid: int, encounter: int, clinic: ClinicHabits, tables: dict[str, sa.Table],
            registry: Callable[[str, str, datetime], bytes], rnd: random.Random) -> list[RowPlan]:
    template, when = plan.vitals_template, plan.vitals
    skip = {"id", "uuid", "date", "pid", "user", "groupname", "patient_sex", "patient_dob", "last_updated", "BMI",
            "BMI_status",
            "note", "external_id"}
    values = {k: v for k, v in template.items() if k not in skip}
    values.update({"note": _blank(template.get("note")), "external_id": None})
    for name, spread in _JITTER.items():
        values[name] = _moved(template.get(name), spread, rnd, whole=name in _WHOLE)
    if values.get("oxygen_saturation"):
        values["oxygen_saturation"] = min(100.0, float(values["oxygen_saturation"]))
    weight, height = float(values.get("weight") or 0), float(values.get("height") or 0)
    if template.get("BMI") and weight and height:
        values["BMI"] = round(703.0 * weight / (height * height), 1)  # lb and inches, as OpenEMR computes it
        values["BMI_status"] = _bmi_status(values["BMI"], clinic.vitals, template.get("BMI_status"))
    values.update({"date": when, "pid": pid, "user": plan.clinician.username, "groupname": clinic.groupname,
                   "last_updated": when})
    if template.get("uuid") is not None:
        values["uuid"] = registry("uuid_vitals", "form_vitals", when)
    form = _form(when, encounter, "Vitals", "vitals", pid, plan.clinician, clinic, "vitals")
    return [RowPlan("form_vitals", ("id",), _only(tables["form_vitals"], values), generated=dict(_ID), alias="vitals",
                    unchecked=frozenset({"last_updated"})),
            RowPlan("forms", ("id",), _only(tables["forms"], form.values), generated=dict(_ID), refs=form.refs,
                    alias="vitals_form")]


def _moved(value: Any, spread: float, rnd: random.Random, *, whole: bool) -> Any:
    """A site's measurement moved by a little noise; an empty one stays as the site leaves it."""
    if value in (None, "") or not str(value).replace(".", "", 1).isdigit() or float(value) == 0:
        return value
    moved = max(0.0, float(value) + rnd.uniform(-spread, spread))
    return str(round(moved)) if whole or isinstance(value, str) else round(moved, 2)


def _bmi_status(bmi: float, rows: list[dict[str, Any]], default: Any) -> Any:
    """The status this site writes for the nearest BMI it has (its own words and thresholds)."""
    known = [(abs(float(r["BMI"]) - bmi), r.get("BMI_status")) for r in rows if r.get("BMI")]
    return min(known, key=lambda pair: pair[0])[1] if known else default


def _issue(template: dict[str, Any], when: datetime, pid: int, clinician: Clinician | None, clinic: ClinicHabits,
           table: sa.Table, registry: Callable[[str, str, datetime], bytes], n: int) -> RowPlan:
    values = {k: template.get(k) for k in _ISSUE_COPIED if k in template}
    values.update({k: _blank(template.get(k)) for k in _ISSUE_BLANKED if k in template})
    values.update(dict.fromkeys(_ISSUE_NULLED))
    values.update({"date": when, "modifydate": when, "pid": pid, "activity": 1, "enddate": None,
                   "begdate": None if template.get("begdate") is None else datetime.combine(when.date(),
                                                                                            datetime.min.time()),
                   "user": clinician.username if clinician else template.get("user"), "groupname": clinic.groupname})
    if template.get("uuid") is not None:
        values["uuid"] = registry(f"uuid_issue_{n}", "lists", when)
    return RowPlan("lists", ("id",), _only(table, values), generated=dict(_ID), alias=f"issue_{n}",
                   unchecked=frozenset({"modifydate"}))


def _appointment(plan: Schedule, pid: int, table: sa.Table, registry: Callable[[str, str, datetime], bytes],
                 status: str) -> RowPlan:
    template, booked, on = plan.appointment
    values = {k: template.get(k) for k in _APPOINTMENT_COPIED if k in template}
    values.update({k: _blank(template.get(k)) for k in _APPOINTMENT_BLANKED if k in template})
    end = template.get("pc_endDate")
    values.update({"pc_pid": str(pid), "pc_time": booked, "pc_eventDate": on,
                   "pc_endDate": on if end == template.get("pc_eventDate") else end,
                   # No reminder from this appointment: reminders only ever go to our own contact points.
                   "pc_sendalertsms": "NO", "pc_sendalertemail": "NO"})
    if status != "site":
        values["pc_apptstatus"] = status
    if template.get("uuid") is not None:
        values["uuid"] = registry("uuid_appointment", "openemr_postcalendar_events", booked)
    return RowPlan("openemr_postcalendar_events", ("pc_eid",), _only(table, values),
                   generated={"pc_eid": Generated(AUTOINCREMENT)}, alias="appointment")


def _blank(value: Any) -> Any:
    """A free-text field of another patient's row: its empty writing ('' or NULL), never its text."""
    return None if value is None else ""


def _only(table: sa.Table, values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k in table.c}
