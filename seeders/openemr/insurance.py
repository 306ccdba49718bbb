"""The ``insurance_data`` rows OpenEMR's new-patient form writes, blank as staff leave them.

interface/new/new_comprehensive_save.php calls ``newInsuranceData``
(library/patient.inc.php) for "primary", then, unless the
``insurance_only_one`` global is set, "secondary" and "tertiary"; none at all
with ``simplified_demographics``. Each call is one
``INSERT INTO insurance_data SET type, provider, policy_number, ...`` with
the values posted by the insurance part of the form: a field left blank
posts ``''``, the dates (subscriber_DOB, date, date_end) become NULL,
``accept_assignment`` 'TRUE' and ``policy_type`` ''. ``uuid`` is left NULL
(newInsuranceData registers none).

The rows name no insurer (provider ''): OpenEMR bills no one for them and
``getEffectiveInsurances`` stops at the first row without a provider, so no
claim can ever be built from them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from seeders.sql.blend import TableHabits
from seeders.sql.rows import AUTOINCREMENT, Generated, RowPlan

# The columns newInsuranceData sets, in its order (the dates apart).
POSTED_TEXT = (
    "provider", "policy_number", "group_number", "plan_name", "subscriber_lname", "subscriber_mname",
    "subscriber_fname", "subscriber_relationship", "subscriber_ss", "subscriber_street",
    "subscriber_postal_code", "subscriber_city", "subscriber_state", "subscriber_country", "subscriber_phone",
    "subscriber_employer", "subscriber_employer_city", "subscriber_employer_street",
    "subscriber_employer_postal_code", "subscriber_employer_state", "subscriber_employer_country", "copay",
    "subscriber_sex",
)
# The SET clause of newInsuranceData, column by column, as its SQL text names them (for the audit log).
SET_ORDER = ("type", *POSTED_TEXT[:10], "subscriber_DOB", *POSTED_TEXT[10:], "pid", "date", "accept_assignment",
             "policy_type", "date_end")


def insurance_rows(types: tuple[str, ...], pid: int, habits: TableHabits, table: sa.Table) -> list[RowPlan]:
    """One blank row per insurance level the form saves, each empty field written as this site writes it."""
    rows = []
    for level in types:
        values: dict[str, Any] = {"type": level}
        for column in POSTED_TEXT:
            # A site whose form lacks a field stores NULL there (filter_input of an absent field).
            values[column] = _empty(habits, level, column)
        values.update({"subscriber_DOB": None, "pid": pid, "date": None, "accept_assignment": "TRUE",
                       "policy_type": "", "date_end": None})
        rows.append(RowPlan("insurance_data", ("id",), {k: v for k, v in values.items() if k in table.c},
                            generated={"id": Generated(AUTOINCREMENT)}, alias=f"insurance_{level}"))
    return rows


def _empty(habits: TableHabits, level: str, column: str) -> Any:
    """'' (a blank field posted) unless this site's blank rows of that level hold NULL."""
    blank = [r for r in habits.rows if r.get("type") == level and r.get(column) in (None, "")]
    if not blank:
        return ""
    return None if sum(r.get(column) is None for r in blank) * 2 > len(blank) else ""


def insert_sql(values: dict[str, Any]) -> tuple[str, list[Any]]:
    """The statement and binds newInsuranceData runs, as EventAuditLogger logs them."""
    columns = [c for c in SET_ORDER if c in values]
    sql = "INSERT INTO `insurance_data` SET " + ",\n        ".join(f"`{c}` = ?" for c in columns)
    return sql, [values[c] for c in columns]
