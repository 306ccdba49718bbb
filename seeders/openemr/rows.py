"""The rows OpenEMR writes for a new patient, in its own order.

The new-patient screen (interface/new/new_comprehensive_save.php) and the
services behind it write, for one patient:

1. ``uuid_registry`` then ``patient_data`` (PatientService::databaseInsert:
   pid = MAX(pid)+1, pubpid = pid when left empty, a registered uuid,
   date = regdate = now, created_by = updated_by = the user; then
   updateDupScore),
2. ``employer_data`` (updateEmployerData, unless the site omits employers),
3. ``uuid_registry`` then ``history_data`` (SocialHistoryService::create),
4. ``insurance_data``: primary, secondary, tertiary, blank (newInsuranceData;
   seeders/openemr/insurance.py),
5. per allergy: ``uuid_registry`` then ``lists`` (type 'allergy', as the
   issue form writes it), and ``lists_touch`` once (setListTouch),
6. ``patient_access_onsite`` when staff create portal credentials
   (PatientAccessOnsiteService::saveCredentials),

each audited insert followed by its ``log`` and ``log_comment_encrypt`` rows
(seeders/openemr/auditlog.py). The text columns of the DEM layout fields the
form posts (uor > 0) hold '' when the identity leaves them empty
(BaseService::buildInsertColumns). Everything the identity does not decide is
filled the way this site's recent rows are (seeders.sql.blend). Encounters,
appointments, billing and messages are never written here.
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Callable

import sqlalchemy as sa

from canary import phones
from canary.identity.generator import home_line_only_share, second_line_share
from canary.identity.medical import ALLERGIC_SHARE
from canary.identity.names import married_name_share
from canary.identity import refdata
from canary.identity.occupations import occupation
from canary.identity.sampling import pick
from canary.identity.places import address_complement
from canary.model import Identity, Sex
from seeders.common.transforms import strip_accents
from seeders.sql.blend import TableHabits, habitual, neighbour_fill, next_code
from seeders.openemr import auditlog, insurance
from seeders.openemr.clinic import ClinicHabits
from seeders.openemr.footprint import Schedule, footprint_rows
from seeders.openemr.host import OpenEmrHost
from seeders.openemr.setup import OpenEmrSetup
from seeders.openemr.values import account_name, nir_spaced
from seeders.sql.rows import AUTOINCREMENT, Generated, RowPlan

_ID = {"id": Generated(AUTOINCREMENT)}

# Timestamps OpenEMR rewrites (date is "last updated"), and the duplicate score
# its duplicate-management report recomputes: verify does not compare them.
UNCHECKED = {
    "uuid_registry": frozenset({"created"}),
    "patient_data": frozenset({"date", "regdate", "dupscore", "last_updated"}),
    "employer_data": frozenset({"date"}),
    "history_data": frozenset({"date"}),
    "lists": frozenset({"date", "modifydate"}),
    "lists_touch": frozenset({"date"}),
}
# What PatientService::databaseInsert adds after the layout fields, in its order.
_SERVICE_COLUMNS = ["pid", "uuid", "date", "regdate", "created_by", "updated_by"]


@dataclass(frozen=True, slots=True)
class Numbers:
    """What the database decides for this patient, read just before the insert."""

    pid: int
    next_id: int  # the AUTO_INCREMENT value patient_data.id will take (portal account name)
    now: datetime  # the registration (regdate), before the day's events
    previous_pid: int = 0  # the patient open in the creating user's session (its last log row)
    previous_by_user: dict[str, int] | None = None  # the same for each user who may be drawn as creator
    clock: datetime | None = None  # the database's now: the day's last event
    latest: datetime | None = None  # the latest registration of the site (regdates stay in pid order)
    schedule: Schedule | None = None  # the day's events (seeders/openemr/footprint.py)
    encounter: int = 0  # the encounter number taken from sequences


@dataclass(frozen=True, slots=True)
class Choices:
    """The option values for this plant, after "auto" is resolved against the host."""

    allergies: bool
    portal: str  # auto (at the site's rate) | yes | no
    appointment_status: str  # pc_apptstatus of a future appointment; "site": as the site's
    portal_login: str  # email | account | identity
    provider_id: int | None | str  # None: like the neighbours; "none": NULL
    ref_provider_id: int | None | str
    facility_id: int | None  # None: like the neighbours
    language: str
    country_code: str
    explicit: frozenset[str] = frozenset()  # patient_data columns an option sets (else drawn from the site)


def build_rows(identity: Identity, host: OpenEmrHost, setup: OpenEmrSetup, choices: Choices, numbers: Numbers,
               tables: dict[str, sa.Table], dupscore: Callable[[dict[str, Any]], int],
               new_uuid: Callable[[datetime], bytes], hash_password: Callable[[str, int], str],
               clinic: ClinicHabits | None = None, rnd: Any = None) -> list[RowPlan]:
    """Every row of one patient, in OpenEMR's order; ``tables`` are the reflected tables."""
    pid, now = numbers.pid, numbers.now
    rnd = rnd or random.Random()
    if host.creators:  # registered by one of the site's front-desk users, as often as each registers
        host = replace(host, user=rnd.choice(host.creators))
        if numbers.previous_by_user is not None:  # the patient open in that user's own session
            numbers = replace(numbers, previous_pid=numbers.previous_by_user.get(host.user.username, 0))
    user_id = host.user.id if host.user else None
    rows: list[RowPlan] = []

    def registry(alias: str, table_name: str, when: datetime | None = None,
                 into: list[RowPlan] | None = None) -> bytes:
        when = when or now
        raw = new_uuid(when)
        (rows if into is None else into).append(RowPlan("uuid_registry", ("uuid",), _only(tables["uuid_registry"], {
            "uuid": raw, "table_name": table_name, "table_id": "id", "table_vertical": "", "couchdb": "",
            "document_drive": 0, "mapped": 0, "created": when,
        }), alias=alias, unchecked=UNCHECKED["uuid_registry"]))
        return raw

    patient = _patient_values(identity, host, choices, numbers, tables["patient_data"], setup.posted_columns, rnd)
    patient["uuid"] = registry("uuid_patient", "patient_data")
    if "dupscore" in tables["patient_data"].c:
        patient["dupscore"] = dupscore(patient)
    rows.append(RowPlan("patient_data", ("pid",), patient, generated=dict(_ID),
                        unchecked=UNCHECKED["patient_data"]))

    if host.employer_rows:
        rows.append(RowPlan("employer_data", ("id",), _employer_values(host, pid, user_id, now,
                                                                        tables["employer_data"]),
                            generated=dict(_ID), unchecked=UNCHECKED["employer_data"]))
    if host.history_rows:
        history = {**neighbour_fill(host.histories, tables["history_data"], skip={"id", "uuid", "pid", "date"}),
                   "pid": pid, "date": now}
        history["uuid"] = registry("uuid_history", "history_data")
        rows.append(RowPlan("history_data", ("id",), _only(tables["history_data"], history),
                            generated=dict(_ID), unchecked=UNCHECKED["history_data"]))
    rows += insurance.insurance_rows(setup.insurance_types, pid, host.insurances, tables["insurance_data"])

    entered = numbers.schedule.allergies if numbers.schedule and numbers.schedule.allergies else now
    # A registration squeezed against the clock (no room for the day's events: a burst, or a drip
    # moment right after the site's last patient) has no moment for the allergies but its own second,
    # where no real patient has them (`lists:same_second`): they come with the first later visit, when
    # the site has visits to learn later ones from (else there would be none: written now, as before).
    squeezed = numbers.schedule is not None and numbers.schedule.allergies is None and \
        clinic is not None and bool(clinic.clinicians and clinic.encounters)
    if choices.allergies and not squeezed and writes_allergies(identity, host):
        allergy_rows(identity, host, pid, entered, tables, registry, rows)

    plan = numbers.schedule
    if plan is not None and clinic is not None:
        rows += footprint_rows(plan, pid, numbers.encounter, clinic, tables, registry, rnd, choices.appointment_status,
                               log_views=not setup.on("enable_auditlog_encryption"))
    if plan is not None and plan.portal is not None:
        portal = portal_values(identity, host, choices, patient, numbers, tables["patient_access_onsite"],
                               hash_password)
        if "date_created" in tables["patient_access_onsite"].c:
            portal["date_created"] = plan.portal
        rows.append(RowPlan("patient_access_onsite", ("id",), portal, generated=dict(_ID), alias="portal"))
    rows = _logged(rows, host, setup, numbers, setup.posted_columns)
    if plan is not None and plan.between and clinic is not None and not setup.on("enable_auditlog_encryption") \
            and "log" in tables and "log_comment_encrypt" in tables:
        # The patient named again by the session that registered it (seeders/openemr/footprint.py Schedule).
        user = host.user.username if host.user else rnd.choice(clinic.between_log_users)
        for n, at in enumerate(plan.between):
            rows += auditlog.log_rows(f"{BETWEEN_ALIAS}{n}", at, "view", "view",
                                      auditlog.LogContext(user, clinic.groupname, pid), b"", pid)
    return rows


# Alias prefix of those rows' log_rows (the seeder then leaves them out of the first later visit).
BETWEEN_ALIAS = "between_registration_"


def _logged(rows: list[RowPlan], host: OpenEmrHost, setup: OpenEmrSetup, numbers: Numbers,
            posted: tuple[str, ...]) -> list[RowPlan]:
    """The rows with the audit log rows OpenEMR writes along them (none where it encrypts its log)."""
    if setup.on("enable_auditlog_encryption"):
        return rows
    context = auditlog.LogContext(user=host.user.username if host.user else "", group=host.groupname,
                                  previous_pid=numbers.previous_pid)
    if not (setup.on("enable_auditlog") and setup.on("audit_events_patient-record")):
        return auditlog.credentials_logged(auditlog.view_only(rows, context, numbers.pid, numbers.now), context,
                                           numbers.pid)
    patient_order = list(posted) + _SERVICE_COLUMNS

    def patient_insert(values: dict[str, Any]) -> tuple[str, list[Any]]:
        return auditlog.service_insert("patient_data", {k: v for k, v in values.items() if k != "dupscore"},
                                       patient_order)

    texts = {
        "patient_data": patient_insert,
        "employer_data": auditlog.employer_insert,
        "history_data": lambda values: auditlog.service_insert("history_data", values, ["pid", "uuid", "date"]),
        "insurance_data": insurance.insert_sql,
    }
    return auditlog.credentials_logged(auditlog.audited(rows, context, numbers.pid, numbers.now, texts), context,
                                       numbers.pid)


def _patient_values(identity: Identity, host: OpenEmrHost, choices: Choices, numbers: Numbers,
                    table: sa.Table, posted: tuple[str, ...], rnd: Any) -> dict[str, Any]:
    habits = host.patients
    sex = "Male" if identity.sex is Sex.MALE else "Female"
    lname = _cased(habits, "lname", identity.last_name)
    fname = _cased(habits, "fname", identity.first_name)
    age = _age(identity.birth_date, numbers.now)
    # The recent patient like this one who lends the site's choices, and which columns are filled.
    donor = site_donor(habits, rnd, sex=sex, age=age,
                       birth_name=_records_birth_name(identity, habits, sex=sex, age=age, rnd=rnd),
                       exclude=host.own_pids, balance=host.own_rows)
    nir = nir_spaced(identity.nir) if _spaced_nirs(habits) else identity.nir
    values: dict[str, Any] = {
        "pid": numbers.pid,
        "pubpid": _pubpid(habits, numbers.pid),
        "fname": fname,
        "lname": lname,
        # Second first names: written when the lending patient's record has one (the identity's, else one
        # given in its birth decade), else that record's empty writing.
        "mname": _own(donor, habits, "mname", lambda: _middle_name(identity, habits, rnd),
                      _cased(habits, "fname", " ".join(identity.first_names[1:]))),
        "DOB": identity.birth_date,
        "sex": sex,
        # The NIR where the lending patient's record has one (the site's staff leave it empty for some): the
        # registry keeps the identity's either way.
        "ss": _own(donor, habits, "ss", lambda: nir, nir),
        "street": identity.address.line1,
        # A complement where the lending patient has one: the identity's, else one of the same kind.
        "street_line_2": _own(donor, habits, "street_line_2",
                              lambda: identity.address.line2 or address_complement(rnd), identity.address.line2),
        "postal_code": identity.address.postcode,
        "city": _city(habits, identity.address.city),
        # Written when the lending patient has one (fewer of the old have an e-mail); the registry keeps
        # the identity's address as a token either way.
        "email": _own(donor, habits, "email", lambda: identity.email, identity.email),
        "regdate": numbers.now,
        "date": numbers.now,
        # DEFAULT CURRENT_TIMESTAMP: the insert's moment, written out so it is the registration's
        # (the database's own clock would stamp the moment the seeder ran).
        "last_updated": numbers.now,
    }
    values.update(_phones(identity, habits, donor, rnd, age))
    values.update(_birth_names(identity, habits, donor, fname))
    if host.user is not None:
        values["created_by"] = values["updated_by"] = host.user.id
    values.update(_edited(habits, numbers, rnd))
    for column, choice in (("providerID", choices.provider_id), ("ref_providerID", choices.ref_provider_id)):
        if choice == "none":
            values[column] = None
        elif choice is not None:
            values[column] = choice
    if choices.facility_id is not None:
        values["care_team_facility"] = str(choices.facility_id)  # a multi-select: "3" or "3|5"
    # 'Allow Patient Portal' is chosen on the demographics form before staff create credentials: YES from
    # registration for a canary whose credentials come with a later visit too.
    portal = numbers.schedule is not None and (numbers.schedule.portal is not None or numbers.schedule.portal_later)
    if portal:
        values["allow_patient_portal"] = "YES"
    for column in choices.explicit:
        values[column] = getattr(choices, column)
    # Identity-bound columns the patient may leave empty are never copied from the neighbours.
    written = set(values) | {"id", "uuid", "dupscore", "last_updated", "birth_fname", "birth_lname", "birth_mname",
                             "phone_home", "phone_cell", "created_by", "updated_by"}
    filled = neighbour_fill(habits, table, skip=written)
    # Every text field of the form is posted, '' when left blank (BaseService::buildInsertColumns).
    blank = {c: "" for c in posted if isinstance(table.c[c].type, sa.String)}
    drawn, own = drawn_from_site(habits, table, written | _PERSONAL, donor)
    if "occupation" in own:  # the lending patient's own words: the canary's own occupation instead
        mine = occupation(rnd, age, sex == "Female")  # '' for a young child: the lender's empty writing
        drawn["occupation"] = _cased(habits, "occupation", mine) if mine else drawn["occupation"]
    for column in ("language", "country_code"):  # an empty site: the defaults
        drawn.setdefault(column, getattr(choices, column))
    if not portal and drawn.get("allow_patient_portal") == "YES":
        # Portal allowed goes with an account: another choice of the site's patients without one.
        others = [r.get("allow_patient_portal") for r in habits.rows if r.get("allow_patient_portal") != "YES"]
        drawn["allow_patient_portal"] = rnd.choice(others) if others else ""
    return _only(table, {**blank, **filled, **drawn, **values})


# Columns about the person (relatives, other contact points, death): never taken from another patient.
_PERSONAL = frozenset({"mothersname", "guardiansname", "guardianrelationship", "guardiansex", "guardianaddress",
                       "guardiancity", "guardianstate", "guardianpostalcode", "guardiancountry", "guardianphone",
                       "guardianworkphone", "guardianemail", "phone_biz", "phone_contact", "contact_relationship",
                       "drivers_license", "email_direct", "suffix", "preferred_name", "street_line_2", "county",
                       "deceased_date", "deceased_reason", "name_history", "billing_note", "genericname1",
                       "genericval1", "genericname2", "genericval2", "cmsportal_login", "pubpid", "regdate", "date",
                       "financial_review", "ad_reviewed", "contrastart", "imm_reg_stat_effdate",
                       "publ_code_eff_date", "prot_indi_effdate", "provider_since_date"})
# A value at least this many of the sampled patients share is a pick-list choice, not someone's own text.
_COMMON = 3


# Age bands the lending patient is drawn in: contact points and civil status change with age.
_AGE_BANDS = (18, 30, 45, 65, 80)


def site_donor(habits: TableHabits, rnd: Any, *, sex: str, age: int, birth_name: bool,
               exclude: frozenset[int] = frozenset(), balance: Any = ()) -> dict[str, Any] | None:
    """One of the site's recent patients like the canary, drawn at random: same sex, same age band and,
    when it can, a birth name apart from the used name exactly when the canary has one (a married woman
    whose staff record her birth name). Relaxed in that order, then to the next age bands, when no recent
    patient matches; None on an empty site. ``exclude``: pids never drawn (our own canaries).

    ``balance``: the rows of the canaries already planted. Among a few patients drawn from the tier, the
    one whose lent columns bring the canaries' shares closest to the site's (``_balanced``): thirty
    canaries each drawn freely land 15-25 points off the site on one column or another."""
    band = _band(age)
    bands = [(r, _band(_age(r.get("DOB"), r.get("regdate")))) for r in habits.rows if r.get("pid") not in exclude]
    tiers = (
        lambda r, b: r.get("sex") == sex and b == band and _other_birth_name(r) == birth_name,
        lambda r, b: r.get("sex") == sex and b == band,
        lambda r, b: r.get("sex") == sex and abs(b - band) <= 1,
        lambda r, b: r.get("sex") == sex,
        lambda r, b: True,
    )
    for tier in tiers:
        like = [r for r, b in bands if tier(r, b)]
        if like:
            return _balanced(like, habits, rnd, balance, exclude)
    return None


# Columns the identity, the clock or the creator decide, never balanced; nor are dates and binary columns.
_NOT_LENT = frozenset({"id", "uuid", "pid", "pubpid", "fname", "lname", "DOB", "sex", "street", "postal_code", "city",
                       "regdate", "date", "last_updated", "created_by", "updated_by", "dupscore", "birth_lname",
                       "birth_fname", "birth_mname", "phone_home", "phone_cell"})
_CANDIDATES = 4  # patients drawn from the tier, the best balanced kept


def _lent_key(habits: TableHabits, name: str, value: Any) -> Any:
    """What a lent column shows of a value: NULL, empty, a pick-list value, or someone's own text."""
    if value is None:
        return None
    if isinstance(value, str) and not value.strip():
        return ""
    short = value if not isinstance(value, str) or len(value) <= 64 else None
    return value if habits[name].values.get(short, 0) >= _COMMON else "<own>"


def _balanced(like: list[dict[str, Any]], habits: TableHabits, rnd: Any, canaries: Any,
              exclude: frozenset[int]) -> dict[str, Any]:
    if not canaries or len(like) == 1:
        return rnd.choice(like)
    candidates = rnd.sample(like, min(_CANDIDATES, len(like)))
    site = [r for r in habits.rows if r.get("pid") not in exclude]
    columns = [name for name, value in candidates[0].items() if name not in _NOT_LENT and name in habits.columns and
               not isinstance(value, (bytes, bytearray, memoryview, date, datetime))]
    shares, counts = {}, {}
    for name in columns:
        shares[name] = Counter(_lent_key(habits, name, r.get(name)) for r in site)
        counts[name] = Counter(_lent_key(habits, name, r.get(name)) for r in canaries)
    total, planted = max(1, len(site)), len(canaries) + 1

    def distance(row: dict[str, Any]) -> float:
        out = 0.0
        for name in columns:
            mine = _lent_key(habits, name, row.get(name))
            for key in set(shares[name]) | set(counts[name]) | {mine}:
                share = (counts[name][key] + (key == mine)) / planted
                out += (share - shares[name][key] / total) ** 2
        return out

    return min(candidates, key=distance)


def drawn_from_site(habits: TableHabits, table: sa.Table, skip: set[str],
                    row: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The choices staff made for ``row`` (``site_donor``), for every column the seeder does not decide.

    The site's distribution, column by column and jointly, not its modal value. A value fewer than
    ``_COMMON`` sampled patients share is that patient's own text: the column gets that row's empty
    writing ('' or NULL) in the first mapping, and the own value is returned in the second one, so the
    caller can write the canary's own text of the same kind. Keys, binary and timestamp columns are never
    drawn.
    """
    out: dict[str, Any] = {}
    own: dict[str, Any] = {}
    if row is None:
        return out, own
    for column in table.c:
        name = column.name
        if name in skip or name not in row or column.primary_key or column.autoincrement is True or isinstance(
                column.type, (sa.LargeBinary, sa.types._Binary, sa.Date, sa.DateTime, sa.Time)):
            continue
        value = row[name]
        if value is None or (isinstance(value, str) and not value.strip()):
            out[name] = value
        elif habits[name].values.get(value if not isinstance(value, str) or len(value) <= 64 else None, 0) >= _COMMON:
            out[name] = value
        else:
            out[name] = "" if isinstance(value, str) else None
            own[name] = value
    return out, own


def _own(donor: dict[str, Any] | None, habits: TableHabits, column: str, text: Callable[[], str | None],
         alone: Any) -> Any:
    """A column the canary fills with its own text exactly when the lending patient fills it (``text()``),
    else that patient's empty writing; ``alone`` without a lending patient (an empty site)."""
    if donor is None:
        return alone if _has(alone) else habits.empty_value(column, "")
    if _has(donor.get(column)):
        return text() or _empty(donor, habits, column)
    return _empty(donor, habits, column)


def _empty(donor: dict[str, Any], habits: TableHabits, column: str) -> Any:
    value = donor.get(column)
    return value if column in donor and not _has(value) else habits.empty_value(column, "")


def _middle_name(identity: Identity, habits: TableHabits, rnd: Any) -> str:
    """The identity's second first names, or one of its sex and birth decade when it has none."""
    middle = " ".join(identity.first_names[1:])
    if not middle:
        table = refdata.first_names("M" if identity.sex is Sex.MALE else "F", identity.birth_date.year)
        for _ in range(10):
            middle = pick(rnd, table)
            if middle.lower() != identity.first_name.lower():
                break
    return _cased(habits, "fname", middle)


def _birth_names(identity: Identity, habits: TableHabits, donor: dict[str, Any] | None, fname: str) -> dict[str, Any]:
    """birth_lname / birth_fname / birth_mname (OpenEMR 7+), written when the lending patient's are: the
    identity's birth name (the used name when it has no other), first names; on an empty site only a
    married name gets its birth name."""
    middle = " ".join(identity.first_names[1:])
    names = {"birth_lname": _cased(habits, "lname", identity.birth_name), "birth_fname": fname,
             "birth_mname": _cased(habits, "fname", middle) if middle else ""}
    if donor is None:
        if identity.married_name_used or habits.filled("birth_lname"):
            return {"birth_lname": names["birth_lname"], "birth_fname": fname}
        return {}
    return {column: _own(donor, habits, column, lambda text=text: text, text) for column, text in names.items()
            if column in donor}


def _records_birth_name(identity: Identity, habits: TableHabits, *, sex: str, age: int, rnd: Any) -> bool:
    """Whether the canary's record shows a birth name apart from its used name: only a married name, kept at
    the rate the site's recent patients of that sex and age band (else the next bands) show one, given how
    often the identity generator gives a married name at that age (canary.identity.names)."""
    if not identity.married_name_used:
        return False
    band = _band(age)
    reached = [(abs(_band(_age(r.get("DOB"), r.get("regdate"))) - band), r) for r in habits.rows
               if r.get("sex") == sex]
    for distance in (0, 1, 2):
        rows = [r for d, r in reached if d <= distance]
        if len(rows) >= _MIN_ROWS:
            site = sum(_other_birth_name(r) for r in rows) / len(rows)
            generated = married_name_share(min(max(age, 0), 120)) if sex == "Female" else 0.0
            return rnd.random() < site / max(generated, site, 1e-9)
    return True


def _other_birth_name(row: dict[str, Any]) -> bool:
    birth, used = row.get("birth_lname"), row.get("lname")
    return _has(birth) and str(birth).strip().lower() != str(used or "").strip().lower()


def _age(born: Any, when: Any) -> int:
    if not isinstance(born, date):
        return -1
    day = when.date() if isinstance(when, datetime) else when if isinstance(when, date) else date.today()
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _band(age: int) -> int:
    return -1 if age < 0 else bisect.bisect(_AGE_BANDS, age)


def _has(value: Any) -> bool:
    return value is not None and str(value).strip() != ""


def _edited(habits: TableHabits, numbers: Numbers, rnd: Any) -> dict[str, Any]:
    """The demographics saved again after registering, as often and as long after as the site's patients
    (``date``, ``last_updated`` and ``updated_by`` change when staff save the form again), never after now:
    a later edit than the clock allows is made at the clock."""
    edits = [(r["date"] - r["regdate"], r.get("updated_by")) for r in habits.rows
             if isinstance(r.get("date"), datetime) and isinstance(r.get("regdate"), datetime)]
    if not edits or numbers.clock is None:
        return {}
    delay, user = rnd.choice(edits)
    if delay.total_seconds() < 1 or numbers.clock <= numbers.now or numbers.now + delay > numbers.clock:
        # A save later than the clock is not made now at the clock (canaries saved again minutes after
        # registering, where the site's are hours or months later): a later visit may make it
        # (second_save, below).
        return {}
    when = numbers.now + delay
    out: dict[str, Any] = {"date": when, "last_updated": when}
    if user is not None:
        out["updated_by"] = user
    return out


LATER_SAVE = timedelta(hours=1)  # a save at least this long after the registration: not the day's own


def second_save(habits: TableHabits, rnd: Any, spread: tuple[float, float] | None = None
                ) -> tuple[float, int | None] | None:
    """For a record not saved again on its registration day: whether it will be, drawn at the site's
    rate among its records saved again later or never, and then how long after registering and by whom
    (seconds, ``updated_by``); None: never, as those of the site's records are.

    ``spread``: the two uniforms of the draw given by the caller (``canary_spread``: whether, then which
    of the site's delays in their order), so that a source's successive canaries cover the site's rate
    and delays evenly instead of each drawing its own (thirty independent draws at 50 % give 7 to 23)."""
    later, never = [], 0
    for row in habits.rows:
        if isinstance(row.get("date"), datetime) and isinstance(row.get("regdate"), datetime):
            delay = row["date"] - row["regdate"]
            if delay >= LATER_SAVE:
                later.append((delay.total_seconds(), row.get("updated_by")))
            elif delay.total_seconds() < 1:
                never += 1
    if spread is None:
        if not later or rnd.random() >= len(later) / (len(later) + never):
            return None
        return rnd.choice(later)
    if not later or spread[0] >= len(later) / (len(later) + never):
        return None
    later.sort(key=lambda drawn: drawn[0])
    return later[min(int(spread[1] * len(later)), len(later) - 1)]


# The plastic number's R2 sequence (Roberts 2018): the k-th point (frac(s + k / g), frac(t + k / g^2)) of
# any run of consecutive k covers the unit square about as evenly as a grid would.
_PLASTIC = 1.324717957244746


def canary_spread(ordinal: int, start: tuple[float, float]) -> tuple[float, float]:
    """The ``ordinal``-th point of a source's R2 sequence starting at ``start`` (two uniforms): each
    point is uniform, as an independent draw is, but successive canaries' points spread evenly."""
    return ((start[0] + ordinal / _PLASTIC) % 1.0, (start[1] + ordinal / _PLASTIC ** 2) % 1.0)


def _phones(identity: Identity, habits: TableHabits, donor: dict[str, Any] | None = None, rnd: Any = None,
            age: int = -1) -> dict[str, Any]:
    """Mobiles go to phone_cell, landlines to phone_home, each written as the neighbours write it.

    With a lending patient (``site_donor``) the canary has a phone exactly when that patient has one, and
    each slot is written at the rate the recent patients of its age band who have a phone fill it (the
    old keep home lines, fewer have a mobile): the identity's number of that kind, kept with the share
    that brings the identity generator's rate of that kind (canary.identity.generator) to the site's;
    its main number in its own slot when none is kept. Numbers left out stay the identity's tokens.
    """
    slots: dict[str, str] = {}
    for number in (identity.phone, identity.phone2):
        if not number:
            continue
        wanted = "phone_cell" if phones.kind(number) == "mobile" else "phone_home"
        other = "phone_home" if wanted == "phone_cell" else "phone_cell"
        slot = wanted if wanted not in slots else other if other not in slots else None
        if slot:
            slots[slot] = number
    if donor is not None:
        if not (_has(donor.get("phone_home")) or _has(donor.get("phone_cell"))):
            slots = {}
        elif slots:
            shares = _phone_shares(habits, age)
            rates = _identity_phone_rates(age)
            kept = {c: n for c, n in slots.items()
                    if shares is None or (rnd or random).random() < shares[c] / max(rates[c], shares[c], 1e-9)}
            first = next(iter(slots))  # the identity's main number
            slots = kept or {first: slots[first]}
    out = {}
    for column in ("phone_home", "phone_cell"):
        if column in slots:
            style = habits[column].phone_style or habits["phone_home"].phone_style or "spaced"
            out[column] = phones.formats(slots[column])[style]
        else:
            out[column] = _empty(donor, habits, column) if donor is not None else habits.empty_value(column, "")
    return out


_MIN_ROWS = 10  # recent patients of an age band enough to read its phone habits from


def _phone_shares(habits: TableHabits, age: int) -> dict[str, float] | None:
    """Among the recent patients of the age band (else the next bands, else all) who have a phone, the share
    with each slot filled; None without any."""
    band = _band(age)
    reached = [(abs(_band(_age(r.get("DOB"), r.get("regdate"))) - band), r) for r in habits.rows
               if _has(r.get("phone_home")) or _has(r.get("phone_cell"))]
    for distance in (0, 1, len(_AGE_BANDS) + 2):
        rows = [r for d, r in reached if d <= distance]
        if len(rows) >= _MIN_ROWS or (rows and distance > len(_AGE_BANDS)):
            return {c: sum(_has(r.get(c)) for r in rows) / len(rows) for c in ("phone_home", "phone_cell")}
    return None


def _identity_phone_rates(age: int) -> dict[str, float]:
    """How often the identity generator gives a patient of ``age`` a landline, a mobile."""
    age = min(max(age, 0), 120)
    only_home = home_line_only_share(age)
    return {"phone_home": only_home + (1 - only_home) * second_line_share(age), "phone_cell": 1 - only_home}


def _employer_values(host: OpenEmrHost, pid: int, user_id: int | None, now: datetime,
                     table: sa.Table) -> dict[str, Any]:
    # The screen posts every employer field of the layout, empty.
    posted = {name: "" for name in ("name", "street", "street_line_2", "postal_code", "city", "state", "country")}
    filled = neighbour_fill(host.employers, table, skip={"id", "uuid", "pid", "date", "created_by"})
    values = {**posted, **filled, "pid": pid, "date": now}
    if user_id is not None:
        values["created_by"] = user_id
    return _only(table, values)


def writes_allergies(identity: Identity, host: OpenEmrHost) -> bool:
    """Whether this canary's allergies are entered: as many canaries have allergies entered as the site's
    recent patients have (the identity generator gives ALLERGIC_SHARE of them some), decided the same
    way for one identity at its registration and at its later visits."""
    if not identity.allergies:
        return False
    if host.allergic_share is None:
        return True  # no recent patient to learn from: the identity's own
    keep = min(1.0, host.allergic_share / ALLERGIC_SHARE)
    return random.Random(f"allergies:{identity.nir}").random() < keep


def allergy_rows(identity: Identity, host: OpenEmrHost, pid: int, entered: datetime, tables: dict[str, sa.Table],
                 registry: Callable[..., bytes], rows: list[RowPlan], user: str | None = None) -> None:
    """Append to ``rows`` the identity's allergies as the issue form enters them (``user``: who typed
    them, else the front desk's account), each after its uuid's registration (``registry`` appends that
    row to the same list), and the patient's ``lists_touch`` once."""
    for n, allergy in enumerate(identity.allergies):
        values = _allergy_values(host, allergy, pid, entered, tables["lists"])
        if user:
            values["user"] = user
        values["uuid"] = registry(f"uuid_allergy_{n}", "lists", entered)
        rows.append(RowPlan("lists", ("id",), values, generated=dict(_ID), alias=f"allergy_{n}",
                            unchecked=UNCHECKED["lists"]))
        if n == 0 and "lists_touch" in tables:
            rows.append(RowPlan("lists_touch", ("pid", "type"), {"pid": pid, "type": "allergy", "date": entered},
                                unchecked=UNCHECKED["lists_touch"]))


def _allergy_values(host: OpenEmrHost, title: str, pid: int, now: datetime, table: sa.Table) -> dict[str, Any]:
    # As the issue form inserts an allergy typed or picked by staff.
    form = {
        "date": now, "pid": pid, "type": "allergy", "title": title, "activity": 1, "comments": "",
        "begdate": None, "enddate": None, "returndate": None, "diagnosis": "", "occurrence": 0,
        "classification": 0, "referredby": "", "outcome": 0, "destination": "", "reinjury_id": 0,
        "injury_grade": "", "injury_part": "", "injury_type": "", "reaction": "", "verification": "",
        "severity_al": "", "list_option_id": host.allergy_option_ids.get(title.strip().lower(), ""),
        "user": host.user.username if host.user else "", "groupname": host.groupname,
    }
    keep = {"date", "pid", "type", "title", "list_option_id", "user", "uuid", "id", "modifydate"}
    filled = neighbour_fill(host.allergies, table, skip=keep)
    return _only(table, {**form, **filled, "modifydate": now})


def portal_values(identity: Identity, host: OpenEmrHost, choices: Choices, patient: dict[str, Any],
                   numbers: Numbers, table: sa.Table, hash_password: Callable[[str, int], str]) -> dict[str, Any]:
    account = account_name(patient["fname"], patient["lname"], numbers.next_id)
    # The e-mail login is the record's e-mail (use_email_for_portal_username): the account name without one.
    email = identity.email if _has(patient.get("email")) else account
    login = {"email": email, "account": account, "identity": identity.portal_login}[choices.portal_login]
    return _only(table, {
        "pid": numbers.pid,
        "portal_username": account,
        "portal_login_username": login,
        "portal_pwd": hash_password(identity.portal_password, host.bcrypt_cost),
        # 0: created by staff, the patient is asked for a new password at first login.
        "portal_pwd_status": 0,
    })


def resolve_choices(host: OpenEmrHost, settings: dict[str, Any]) -> Choices:
    login = settings["portal_login"]
    return Choices(
        allergies=settings["create_allergies"],
        portal=settings["create_portal_account"],
        appointment_status=settings["future_appointment_status"],
        portal_login=("email" if host.login_is_email else "account") if login == "auto" else login,
        provider_id=settings["provider_id"],
        ref_provider_id=settings["ref_provider_id"],
        facility_id=settings["facility_id"],
        language=settings["language"] or habitual(host.patients, "language", "french"),
        country_code=settings["country_code"] or habitual(host.patients, "country_code", "FR"),
        explicit=frozenset(column for column, option in (("language", "language"), ("country_code", "country_code"))
                           if settings[option]),
    )


def _pubpid(habits: TableHabits, pid: int) -> str:
    """pubpid as this site has it: the pid (OpenEMR's default), or its own numbering."""
    rows = [r for r in habits.rows if r.get("pubpid") not in (None, "")]
    if not rows or sum(str(r["pubpid"]) == str(r["pid"]) for r in rows) * 2 >= len(rows):
        return str(pid)
    return next_code(r["pubpid"] for r in rows) or str(pid)


def _spaced_nirs(habits: TableHabits) -> bool:
    nirs = [str(r["ss"]) for r in habits.rows if r.get("ss")]
    return bool(nirs) and sum(" " in n for n in nirs) * 2 > len(nirs)


def _cased(habits: TableHabits, column: str, text: str) -> str:
    return text.upper() if habits.upper(column) else text


def _folded(text: str) -> str:
    """A place name without accents, case, or the punctuation spellings differ by ("Décines-Charpieu",
    "DECINES CHARPIEU")."""
    return " ".join("".join(c if c.isalnum() else " " for c in strip_accents(text).upper()).split())


def _city(habits: TableHabits, city: str) -> str:
    """The identity's commune written as the site's recent patients write it: their own spelling of that
    commune when one of them lives there ("VENISSIEUX" where the identity says "Vénissieux"), else cased as
    they write cities, and without accents when none of their cities has one (La Poste's capitals)."""
    written = Counter(v for r in habits.rows if isinstance(v := r.get("city"), str) and v.strip())
    same = [(n, v) for v, n in written.items() if _folded(v) == _folded(city)]
    if same:
        return max(same)[1]
    cased = _cased(habits, "city", city)
    if written and all(v.isascii() for v in written) and not cased.isascii():
        return strip_accents(cased)
    return cased


def _only(table: sa.Table, values: dict[str, Any]) -> dict[str, Any]:
    """The values whose column exists in this OpenEMR version."""
    return {k: v for k, v in values.items() if k in table.c}
