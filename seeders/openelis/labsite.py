"""What a canary's laboratory footprint copies from the site, read once at ``open()``.

Read only, from the site's newest samples (``SAMPLE_SIZE``): the statuses by
name (``StatusService.buildStatusToIdMaps`` looks them up by name, so ids
are site data), the tests it orders and their catalogue rows (unit, sample
type, normal ranges, numeric ``test_result``), its recent numeric results,
how its sample / item / analysis / result rows are filled, who enters
orders and results (from ``history``), and its pace: the delays between a
patient's registration, the order, the results and the validation.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any

import sqlalchemy as sa

from seeders.common.lab_panels import panel_of
from seeders.openelis.setup import SAMPLE_SIZE
from seeders.openelis.updates import UpdateHabit, read_update_habits
from seeders.sql.target import SqlTarget

# StatusService names: OrderStatus.Finished, SampleStatus.Entered, AnalysisStatus.Finalized.
SAMPLE_FINISHED, ITEM_ENTERED, ANALYSIS_FINALIZED = ("ORDER", "Testing finished"), ("SAMPLE", "SampleEntered"), \
    ("ANALYSIS", "Finalized")
FOOTPRINT_TABLES = ("sample", "sample_human", "sample_item", "analysis", "result", "status_of_sample", "test",
                    "test_result", "sampletype_test", "type_of_sample", "unit_of_measure", "result_limits")
# (order, results, validation) delays of a stock site with nothing to learn from.
# How long a patient must have been followed for its pace of return to count (shorter: too early to tell).
FOLLOWED = timedelta(days=180)
DEFAULT_PACE = ((timedelta(minutes=4), timedelta(hours=2), timedelta(minutes=50)),
                (timedelta(minutes=12), timedelta(hours=4), timedelta(hours=2)),
                (timedelta(minutes=25), timedelta(hours=6), timedelta(hours=3)))


@dataclass
class Test:
    id: int
    name: str
    unit: str | None
    row: dict[str, Any]
    sample_type: tuple[int, str] | None  # type_of_sample id, description
    numeric_result: dict[str, Any] | None  # its test_result row of type N
    limits: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LabSite:
    statuses: dict[tuple[str, str], int]
    tests: dict[int, Test]  # usable tests of the panels, by id
    ordered: Counter  # test id -> recent analyses
    results: dict[int, list[str]]  # test id -> recent numeric result values
    samples: list[dict[str, Any]]
    items: list[dict[str, Any]]
    analyses: list[dict[str, Any]]
    result_rows: list[dict[str, Any]]
    users: dict[str, Counter]  # "enter" / "result" -> system_user id counts (of the history I rows)
    pace: list[tuple[timedelta, ...]]  # (order, results, validation[, reception before the order]) delays
    accession_numbers: list[str]  # newest first
    updates: dict[tuple[str, str], UpdateHabit]  # (table, step) -> the site's U rows of that save
    # Later requests per day of the site's patients followed for a while (0.0: came once), sorted.
    return_rates: list[float] = field(default_factory=list)
    registration_times: list[time] = field(default_factory=list)  # of its newest patients
    weekends: bool = True  # whether the site registers patients on Saturdays and Sundays (5 % of them or more)


def missing_tables(target: SqlTarget) -> list[str]:
    return [name for name in FOOTPRINT_TABLES if target.table(name) is None]


def read_lab_site(target: SqlTarget, history_tables: dict[str, int]) -> LabSite:
    with target.engine.connect() as conn:
        def rows(query: sa.Select) -> list[dict[str, Any]]:
            return [dict(row._mapping) for row in conn.execute(query)]

        t = {name: target.table(name) for name in FOOTPRINT_TABLES}
        statuses = {(row["status_type"], row["name"]): int(row["id"]) for row in rows(
            sa.select(t["status_of_sample"].c.id, t["status_of_sample"].c.status_type, t["status_of_sample"].c.name))}
        samples = rows(sa.select(t["sample"]).order_by(t["sample"].c.id.desc()).limit(SAMPLE_SIZE))
        sample_ids = [row["id"] for row in samples]
        items = rows(sa.select(t["sample_item"]).where(t["sample_item"].c.samp_id.in_(sample_ids)))
        analyses = rows(sa.select(t["analysis"]).where(t["analysis"].c.sampitem_id.in_([r["id"] for r in items])))
        result_rows = rows(sa.select(t["result"]).where(t["result"].c.analysis_id.in_([r["id"] for r in analyses])))
        tests = _tests(rows, t)
        ordered = Counter(int(row["test_id"]) for row in analyses if row["test_id"] is not None)
        test_of = {row["id"]: int(row["test_id"]) for row in analyses if row["test_id"] is not None}
        results: dict[int, list[str]] = defaultdict(list)
        for row in result_rows:
            if row["result_type"] == "N" and row["value"] and row["analysis_id"] in test_of:
                results[test_of[row["analysis_id"]]].append(str(row["value"]))
        users, pace = _history(conn, target, history_tables, samples, items, analyses, result_rows,
                               statuses.get(ANALYSIS_FINALIZED))
        updates = read_update_habits(conn, target, history_tables, {
            "analysis": [r["id"] for r in analyses if r["status_id"] == statuses.get(ANALYSIS_FINALIZED)],
            "sample": [r["id"] for r in samples if r["status_id"] == statuses.get(SAMPLE_FINISHED)]})
        rates = _return_rates(conn, t["sample"], t["sample_human"])
        times, weekends = _registrations(conn, target.table("patient"))
    return LabSite(statuses, tests, ordered, dict(results), samples, items, analyses, result_rows, users, pace,
                   [str(row["accession_number"]) for row in samples], updates, rates, times, weekends)


def _registrations(conn: sa.Connection, patient: sa.Table | None) -> tuple[list[time], bool]:
    """The newest patients' registration times of day, and whether the site registers on weekends."""
    if patient is None or "lastupdated" not in patient.c:
        return [], True
    stamps = [s for s in conn.execute(sa.select(patient.c.lastupdated).order_by(patient.c.id.desc())
                                      .limit(SAMPLE_SIZE)).scalars() if s is not None]
    if len(stamps) < 20:
        return [], True
    weekend = sum(1 for s in stamps if s.weekday() >= 5)
    return sorted(s.time() for s in stamps), weekend >= 0.05 * len(stamps)


def _return_rates(conn: sa.Connection, sample: sa.Table, human: sa.Table) -> list[float]:
    """Per patient followed at least ``FOLLOWED`` days: its later requests per day since its first one.

    One GROUP BY over sample_human and sample (their dates), so a large site is read in one query.
    """
    newest = conn.execute(sa.select(sa.func.max(sample.c.entered_date))).scalar()
    if newest is None:
        return []
    query = (sa.select(sa.func.count(), sa.func.min(sample.c.entered_date))
             .select_from(human.join(sample, sample.c.id == human.c.samp_id))
             .group_by(human.c.patient_id)
             .having(sa.func.min(sample.c.entered_date) <= newest - FOLLOWED))
    rates = []
    for count, first in conn.execute(query):
        days = max(1.0, (newest - first).total_seconds() / 86400)
        rates.append((count - 1) / days)
    return sorted(rates)


def _tests(rows, t) -> dict[int, Test]:  # noqa: ANN001 (the local row reader)
    test, uom = t["test"], t["unit_of_measure"]
    catalogue = rows(sa.select(test, uom.c.name.label("unit_name")).outerjoin(uom, uom.c.id == test.c.uom_id)
                     .where(test.c.is_active == "Y"))
    types = {int(r["test_id"]): (int(r["id"]), r["description"]) for r in rows(
        sa.select(t["sampletype_test"].c.test_id, t["type_of_sample"].c.id, t["type_of_sample"].c.description)
        .join(t["type_of_sample"], t["type_of_sample"].c.id == t["sampletype_test"].c.sample_type_id))}
    numeric = {int(r["test_id"]): r for r in rows(sa.select(t["test_result"]).where(
        t["test_result"].c.tst_rslt_type == "N").order_by(t["test_result"].c.id))}
    limits: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows(sa.select(t["result_limits"])):
        limits[int(row["test_id"])].append(row)
    found = {}
    for row in catalogue:
        test_id = int(row["id"])
        if panel_of(row["name"]) is None or test_id not in numeric:
            continue
        found[test_id] = Test(test_id, row["name"], row["unit_name"], row, types.get(test_id), numeric[test_id],
                              limits.get(test_id, []))
    return found


def _history(conn: sa.Connection, target: SqlTarget, history_tables: dict[str, int], samples, items,  # noqa: ANN001
             analyses, result_rows, finalized) -> tuple[dict[str, Counter], list[tuple[timedelta, ...]]]:  # noqa: ANN001,E501
    """Who enters, results and validates, and the site's delays, from its audit trail."""
    history, human = target.table("history"), target.table("sample_human")
    users: dict[str, Counter] = {"enter": Counter(), "result": Counter()}
    if history is None or not samples:
        return users, []

    def inserts(table: str, ids: list[Any]) -> dict[Any, dict[str, Any]]:
        ref = history_tables.get(table)
        if ref is None or not ids:
            return {}
        query = sa.select(history.c.reference_id, history.c.sys_user_id, history.c.timestamp).where(
            history.c.reference_table == ref, history.c.activity == "I", history.c.reference_id.in_(ids))
        return {row.reference_id: dict(row._mapping) for row in conn.execute(query)}

    sample_in = inserts("sample", [row["id"] for row in samples])
    result_in = inserts("result", [row["id"] for row in result_rows])
    users["enter"].update(int(row["sys_user_id"]) for row in sample_in.values())
    users["result"].update(int(row["sys_user_id"]) for row in result_in.values())
    patient_of = {row.samp_id: row.patient_id for row in conn.execute(
        sa.select(human.c.samp_id, human.c.patient_id).where(human.c.samp_id.in_(list(sample_in))))}
    registered = inserts("patient", list(set(patient_of.values())))
    received = {row["id"]: row.get("received_date") for row in samples}
    return users, _pace(sample_in, result_in, registered, patient_of, items, analyses, result_rows, finalized,
                        received)


def _pace(sample_in, result_in, registered, patient_of, items, analyses, result_rows,  # noqa: ANN001
          finalized, received) -> list[tuple[timedelta, ...]]:  # noqa: ANN001
    """(order, results, validation, reception) delays of the site's new patients' samples.

    The reception one is how long before the order's entry the sample was received (``received_date``
    as the desk typed it; negative when typed later than the entry), kept with the sample's other
    delays; missing where the sample has no reception date.
    """
    sample_of_item = {row["id"]: row["samp_id"] for row in items}
    sample_of_analysis = {row["id"]: sample_of_item.get(row["sampitem_id"]) for row in analyses}
    first_result: dict[Any, Any] = {}
    for row in result_rows:
        stamp, sample = result_in.get(row["id"]), sample_of_analysis.get(row["analysis_id"])
        if stamp is not None and sample is not None:
            first_result[sample] = min(first_result.get(sample, stamp["timestamp"]), stamp["timestamp"])
    validated: dict[Any, Any] = {}
    for row in analyses:
        sample = sample_of_analysis.get(row["id"])
        if row["status_id"] == finalized and row["lastupdated"] is not None and sample is not None:
            validated[sample] = max(validated.get(sample, row["lastupdated"]), row["lastupdated"])
    pace = []
    for sample, stamp in sample_in.items():
        patient = registered.get(patient_of.get(sample))
        if patient is None or sample not in first_result or sample not in validated:
            continue
        delays = (stamp["timestamp"] - patient["timestamp"], first_result[sample] - stamp["timestamp"],
                  validated[sample] - first_result[sample])
        if delays[0] <= timedelta(days=1) and all(d >= timedelta(0) for d in delays):
            typed = received.get(sample)
            lead = stamp["timestamp"] - typed if typed is not None else None
            # a new patient registered for this order
            pace.append(delays + (lead,) if lead is not None and abs(lead) <= timedelta(days=1) else delays)
    return pace
