"""What one OpenEMR site does, read once when the seeder opens.

Its recent patients show how this site fills ``patient_data`` (case of the
names, phone style, which optional columns, '' or NULL), whether its new
patients get ``employer_data`` and ``history_data`` rows, whether it hands
out portal accounts and how their logins look, who creates patients, and
how its allergies are coded. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from canary.errors import ConfigError
from seeders.sql.blend import TableHabits, habits_of, sample_habits
from seeders.openemr.values import bcrypt_cost
from seeders.sql.target import SqlTarget

# Recent patients looked at; enough to see habits, few enough to read fast.
SAMPLE = 200


@dataclass(frozen=True, slots=True)
class OpenEmrUser:
    id: int
    username: str


@dataclass(slots=True)
class OpenEmrHost:
    patients: TableHabits
    employers: TableHabits
    histories: TableHabits
    insurances: TableHabits  # the insurance_data rows of the recent patients
    allergies: TableHabits
    portal: TableHabits
    allergic_share: float | None  # the recent patients with an allergy entered; None: no recent patient
    user: OpenEmrUser | None
    groupname: str
    employer_rows: bool  # new patients get an employer_data row (omit_employers off)
    history_rows: bool  # ... and a history_data row
    portal_accounts: bool  # the site gives patients portal accounts
    login_is_email: bool  # portal login = e-mail (use_email_for_portal_username)
    bcrypt_cost: int
    allergy_option_ids: dict[str, str] = field(default_factory=dict)  # lower-case title -> option_id
    tables: frozenset[str] = frozenset()
    # The users who created the recent patients, one per patient (drawn per canary), unless user_id is set.
    creators: tuple[OpenEmrUser, ...] = ()
    # pids of this source's live canaries (Seeder.set_own_rows): never drawn as the lending patient.
    own_pids: frozenset[int] = frozenset()
    own_rows: tuple[dict[str, Any], ...] = ()  # their patient_data rows (the lent columns balanced against)


def read_host(target: SqlTarget, settings: dict[str, Any], source_name: str) -> OpenEmrHost:
    engine = target.engine
    patient_data = target.table("patient_data")
    patients = sample_habits(engine, patient_data, newest_first=[patient_data.c.pid.desc()], limit=SAMPLE)
    recent_pids = [row["pid"] for row in patients.rows]
    tables = frozenset(name for name in ("employer_data", "history_data", "lists_touch", "users", "list_options")
                       if target.table(name) is not None)

    employers, employer_rows = _dependents(target, "employer_data", recent_pids)
    histories, history_rows = _dependents(target, "history_data", recent_pids)
    insurances, _ = _dependents(target, "insurance_data", recent_pids)
    lists = target.table("lists")
    allergies = sample_habits(engine, lists, where=lists.c.type == "allergy", limit=SAMPLE)
    allergic = _share_with_rows(engine, lists, recent_pids, lists.c.type == "allergy")
    onsite = target.table("patient_access_onsite")
    portal = sample_habits(engine, onsite, limit=SAMPLE)

    user = _creator(target, settings.get("user_id"), patients, source_name)
    logins = [str(r.get("portal_login_username") or "") for r in portal.rows]
    return OpenEmrHost(
        patients=patients, employers=employers, histories=histories, insurances=insurances, allergies=allergies, portal=portal,
        allergic_share=allergic,
        user=user,
        groupname=_usual([r.get("groupname") for r in allergies.rows], "Default"),
        employer_rows=employer_rows if "employer_data" in tables else False,
        history_rows=history_rows if "history_data" in tables else False,
        portal_accounts=len(portal) > 0,
        # Stock OpenEMR uses the e-mail as portal login; a site that turned it
        # off shows logins without '@' (the account name).
        login_is_email=not logins or sum("@" in x for x in logins) * 2 >= len(logins),
        bcrypt_cost=bcrypt_cost([str(r.get("portal_pwd") or "") for r in portal.rows]),
        allergy_option_ids=_allergy_options(target) if "list_options" in tables else {},
        tables=tables,
        creators=() if settings.get("user_id") is not None else _creators(target, patients),
    )


def _dependents(target: SqlTarget, name: str, recent_pids: list[int]) -> tuple[TableHabits, bool]:
    """Habits of a per-patient table, and whether most recent patients have a row in it."""
    table = target.table(name)
    if table is None:
        return habits_of(name, [], []), False
    if not recent_pids:
        # An empty site: the new-patient screen creates the row.
        return habits_of(name, [], [c.name for c in table.c]), True
    habits = sample_habits(target.engine, table, where=table.c.pid.in_(recent_pids), limit=SAMPLE)
    with_row = {row["pid"] for row in habits.rows}
    return habits, len(with_row) * 2 >= len(recent_pids)


def _creator(target: SqlTarget, user_id: int | None, patients: TableHabits, source_name: str) -> OpenEmrUser | None:
    """The user written as creator: the option, else who creates this site's patients, else admin."""
    users = target.table("users")
    if users is None:
        return OpenEmrUser(user_id, "") if user_id is not None else None
    with target.engine.connect() as conn:
        if user_id is not None:
            row = conn.execute(sa.select(users.c.id, users.c.username).where(users.c.id == user_id)).first()
            if row is None:
                raise ConfigError(f"source '{source_name}': option user_id={user_id}: "
                                  "no such user in OpenEMR's users table")
            return OpenEmrUser(row.id, row.username or "")
        usual = _usual([r.get("created_by") for r in patients.rows], None)
        query = sa.select(users.c.id, users.c.username)
        for condition in ([users.c.id == usual] if usual is not None else []) + [users.c.username == "admin"]:
            row = conn.execute(query.where(condition)).first()
            if row is not None:
                return OpenEmrUser(row.id, row.username or "")
        row = conn.execute(query.where(users.c.username.is_not(None), users.c.username != "")
                           .order_by(users.c.id).limit(1)).first()
    return OpenEmrUser(row.id, row.username or "") if row is not None else None


def _creators(target: SqlTarget, patients: TableHabits) -> tuple[OpenEmrUser, ...]:
    """Who created each recent patient (the front desk shares the work): drawn from, not the usual one."""
    users = target.table("users")
    ids = [r.get("created_by") for r in patients.rows if r.get("created_by") is not None]
    if users is None or not ids:
        return ()
    with target.engine.connect() as conn:
        names = {r.id: r.username for r in conn.execute(sa.select(users.c.id, users.c.username)
                                                        .where(users.c.id.in_(set(ids))))}
    return tuple(OpenEmrUser(i, names[i]) for i in ids if names.get(i))


def _allergy_options(target: SqlTarget) -> dict[str, str]:
    """The site's allergy pick-list: picking one writes its option_id in lists.list_option_id."""
    options = target.table("list_options")
    with target.engine.connect() as conn:
        rows = conn.execute(sa.select(options.c.option_id, options.c.title)
                            .where(options.c.list_id == "allergy_issue_list")).all()
    return {str(r.title).strip().lower(): r.option_id for r in rows if r.title}


def _usual(values: list[Any], default: Any) -> Any:
    present = [v for v in values if v not in (None, "")]
    return max(set(present), key=present.count) if present else default


def _share_with_rows(engine: sa.Engine, table: sa.Table, pids: list[Any], condition: Any) -> float | None:
    """The share of ``pids`` holding at least one row of ``table`` meeting ``condition``."""
    if not pids:
        return None
    query = sa.select(sa.func.count(sa.distinct(table.c.pid))).where(condition, table.c.pid.in_(pids))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0) / len(pids)
