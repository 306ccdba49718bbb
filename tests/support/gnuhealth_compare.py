"""Compare, column by column, the rows of patients GNU Health wrote with the rows of canaries.

A row is reduced to its *shape*: for every column, NULL, '', the boolean, or
"value"; timestamps as their relation to the party's creation (create_date)
or to the row's own creation (write_date); plus a few derived facts the
application computes (federation account = (fed_country or XXX) + PUID,
party code suffix, value_compact = value, activation date = creation day).
Personal values (names, PUID, NIR...) differ by design and are not compared;
everything a reviewer could use to tell canaries from real patients is.

Every canary row's shape must be one the application wrote for a row of the
same table and kind (contact type, name use), and every canary must have the
related rows a real patient has.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime
from typing import Any

from support.gnuhealth_real import rows

TABLES = ("party_party", "party_party_lang", "gnuhealth_person_name", "party_address", "party_contact_mechanism",
          "party_contact_mechanism_language", "gnuhealth_person_alternative_identification", "gnuhealth_patient")


def patient_rows(url: str, party_ids: list[int], link: str) -> dict[int, dict[str, list[dict]]]:
    """party id -> table -> its rows, for the given parties."""
    by_party: dict[int, dict[str, list[dict]]] = {pid: defaultdict(list) for pid in party_ids}
    queries = {
        "party_party": "SELECT * FROM party_party WHERE id = ANY(:ids)",
        "party_party_lang": "SELECT *, party AS owner FROM party_party_lang WHERE party = ANY(:ids)",
        "gnuhealth_person_name": "SELECT *, party AS owner FROM gnuhealth_person_name WHERE party = ANY(:ids)",
        "party_address": "SELECT *, party AS owner FROM party_address WHERE party = ANY(:ids)",
        "party_contact_mechanism": "SELECT *, party AS owner FROM party_contact_mechanism WHERE party = ANY(:ids)",
        "party_contact_mechanism_language": "SELECT l.*, c.party AS owner, c.type AS parent_type "
                                            "FROM party_contact_mechanism_language l JOIN party_contact_mechanism c "
                                            "ON c.id = l.contact_mechanism WHERE c.party = ANY(:ids)",
        "gnuhealth_person_alternative_identification": f"SELECT *, {link} AS owner FROM "
                                                       f"gnuhealth_person_alternative_identification "
                                                       f"WHERE {link} = ANY(:ids)",
        "gnuhealth_patient": f"SELECT *, {link} AS owner FROM gnuhealth_patient WHERE {link} = ANY(:ids)",
    }
    for table, sql in queries.items():
        for row in rows(url, sql, ids=list(party_ids)):
            by_party[row.pop("owner", None) or row["id"]][table].append(row)
    return by_party


def kind(table: str, row: dict) -> str:
    if table == "gnuhealth_person_name":
        return row["use"]
    if table == "party_contact_mechanism":
        return row["type"]
    if table == "party_contact_mechanism_language":
        return row.pop("parent_type")
    return ""


def _relation(value: Any, anchor: Any) -> str:
    if value is None:
        return "NULL"
    if anchor is None:
        return "set"
    return "=" if value == anchor else (">" if value > anchor else "<")


def shape(table: str, row: dict, party: dict, context: dict) -> tuple:
    """The comparable shape of one row of a patient (see the module docstring)."""
    out = {}
    for column, value in row.items():
        if column == "create_date":
            out[column] = "party.create" + _relation(value, party["create_date"])
        elif column == "write_date":
            out[column] = "own.create" + _relation(value, row["create_date"])
        elif value is None:
            out[column] = "NULL"
        elif value == "":
            out[column] = "''"
        elif isinstance(value, bool):
            out[column] = value
        elif isinstance(value, (date, datetime)) and column == "activation_date":
            out[column] = "creation day" if value == party["create_date"].date() else "other day"
        else:
            out[column] = "value"
    if table == "party_party":
        account = row.get("federation_account") or ""
        out["~federation_account"] = account[:3] == (row.get("fed_country") or "XXX") and len(account) == 12
        suffix = (row.get("code") or "")[37:]
        out["~code_suffix"] = ("company" if suffix and suffix == context.get("company") else
                               "given name" if suffix == row.get("name") else suffix and "other")
        out["~citizenship"] = "federation country" if row.get("citizenship") == context.get("fed_country_id") \
            else out["citizenship"]
    if table == "party_contact_mechanism":
        out["~value_compact"] = "= value" if row.get("value_compact") == row.get("value") else "differs"
    if table in ("party_party_lang", "party_contact_mechanism_language"):
        out["~company"] = "user's company" if row.get("company") == context.get("company_id") else out["company"]
    return tuple(sorted(out.items(), key=lambda item: item[0]))


def shapes(url: str, party_ids: list[int], link: str, context: dict) -> tuple[dict, list[Counter]]:
    """(table, kind) -> set of row shapes, and each patient's count of rows by (table, kind)."""
    found: dict[tuple[str, str], set[tuple]] = defaultdict(set)
    structures = []
    for tables in patient_rows(url, party_ids, link).values():
        party = tables["party_party"][0]
        structure: Counter = Counter()
        for table in TABLES:
            for row in tables.get(table, ()):
                key = (table, kind(table, row))
                structure[key] += 1
                found[key].add(shape(table, row, party, context))
        structures.append(structure)
    return found, structures


def differences(app: dict, canaries: dict) -> list[str]:
    """Canary row shapes the application never wrote, each with the columns that differ from the closest."""
    problems = []
    for key, canary_shapes in sorted(canaries.items()):
        written = app.get(key)
        if not written:
            problems.append(f"{key[0]} ({key[1] or 'row'}): the application wrote no such row")
            continue
        for candidate in canary_shapes - written:
            mine = dict(candidate)
            closest = min(written, key=lambda s: sum(dict(s).get(c) != v for c, v in mine.items()))
            theirs = dict(closest)
            diff = ", ".join(f"{c}: canary {mine.get(c)!r} / application {theirs.get(c)!r}"
                             for c in sorted(set(mine) | set(theirs)) if mine.get(c) != theirs.get(c))
            problems.append(f"{key[0]} ({key[1] or 'row'}): {diff}")
    return problems


def structure_problems(app: list[Counter], canaries: list[Counter]) -> list[str]:
    """Related rows a real patient always has in the same number, that a canary has not."""
    always = {key: next(iter(counts)) for key in set().union(*app)
              if len(counts := {s.get(key, 0) for s in app}) == 1}
    problems = []
    for structure in canaries:
        for key, count in always.items():
            if key[0] == "party_contact_mechanism" or key[0] == "party_contact_mechanism_language":
                continue  # how many contacts depends on the identity, not on the seeder
            if structure.get(key, 0) != count:
                problems.append(f"{key[0]} ({key[1] or 'row'}): {structure.get(key, 0)} rows, the application "
                                f"writes {count}")
        for contact_type in {k[1] for k in structure if k[0] == "party_contact_mechanism"}:
            if structure[("party_contact_mechanism_language", contact_type)] != \
                    structure[("party_contact_mechanism", contact_type)]:
                problems.append(f"party_contact_mechanism_language: not one per {contact_type} contact mechanism")
    return sorted(set(problems))
