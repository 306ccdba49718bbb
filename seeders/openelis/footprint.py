"""A canary's laboratory life: one validated request, as OpenELIS writes it.

An export of results never contains a patient without a sample, so every
canary gets one request, written as three saves of the application would
leave it:

1. order entry (``SamplePatientEntryServiceImpl.persistData`` ->
   ``persistSampleData``): ``sample`` (accession number from the site's
   numbering, ``domain`` H, ``entered_date`` the day at midnight,
   ``received_date``, the entering user; ``SampleServiceImpl`` audits it),
   per sample type a ``sample_item`` (``SampleAddService``: status
   "SampleEntered"), per test an ``analysis`` (``populateAnalysis``:
   ``analysis_type`` MANUAL, ``started_date`` = collection), then
   ``sample_human`` (no provider, no history);
2. result entry (``LogbookPersistServiceImpl`` / ``ResultSaveService``): one
   numeric ``result`` per analysis (value, ``test_result_id``, normal range);
3. biologist validation (``AccessionValidationRestController.createUpdateList``,
   ``ResultValidationServiceImpl.persistdata``): analyses "Finalized" with
   ``released_date`` = the day, results and analyses re-saved, the sample
   "Testing finished" once all its analyses are (``checkIfSamplesFinished``).

Rows carry their final state; ``lastupdated`` is the reading of the last save
that touched them, each ``history`` ``I`` row the reading of its insert, each
``U`` row (``seeders.openelis.updates``) the reading of its later save. The
three saves are spaced at the site's own pace, the registration at one of the
site's times of day, and the last save ends before the planting moment (so no
row is dated in the future). ``comes_back`` decides whether a planted canary
has a later request (``canary drip run``), at the pace of one of the site's
patients.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from canary.model import Identity
from seeders.openelis.clock import SaveClock, millis
from seeders.openelis.labsite import ANALYSIS_FINALIZED, DEFAULT_PACE, ITEM_ENTERED, SAMPLE_FINISHED, LabSite, Test
from seeders.common.lab_panels import interval, panel_of
from seeders.openelis.planner import Planner
from seeders.openelis.updates import source_changes
from seeders.sql.rows import Ref, RowPlan

# Columns copied from the site's rows when 80 % of them agree (how its version and forms fill them).
SAMPLE_HABITS = ("domain", "revision", "next_item_sequence", "status", "sticker_rcvd_flag", "spec_or_isolate",
                 "priority", "is_confirmation", "order_priority", "package_id")
ITEM_HABITS = ("collector", "source_id", "uom_id", "quantity", "external_id", "source_other", "rejected",
               "reject_reason_id")
ANALYSIS_HABITS = ("revision", "analysis_type", "status", "reflex_trigger", "referred_out", "corrected",
                   "result_calculated", "method_id", "entry_date")
# Learned from the site's analyses of the same test only (they depend on the test).
ANALYSIS_TEST_HABITS = ("panel_id", "test_sect_id", "is_reportable")
RESULT_HABITS = ("sort_order", "is_reportable", "analyte_id", "grouping", "parent_id", "significant_digits")
# What the application sets where the site has no row to learn from (Sample.isConfirmation, order priority ROUTINE).
DEFAULTS = {"sample": {"domain": "H", "is_confirmation": False, "order_priority": "ROUTINE"},
            "sample_item": {"rejected": False}, "analysis": {"revision": 0, "analysis_type": "MANUAL"},
            "result": {"grouping": 0}}
_AGREE = 0.8
_MIN_SITE_VALUES = 5
_UNKNOWN = object()


@dataclass(frozen=True, slots=True)
class Episode:
    registered: datetime  # the patient's save
    ordered: datetime  # order entry
    resulted: datetime  # result entry
    validated: datetime  # biologist validation, before the planting moment
    received: timedelta | None = None  # how long before the order the sample was received (the site's)


def habits(table: str, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> dict[str, Any]:
    """The columns the site's rows agree on, else the application's default; others left to the database."""
    out = dict(DEFAULTS.get(table, {}))
    for column in columns:
        value = habitual(rows, column, _UNKNOWN)
        if value is not _UNKNOWN:
            out[column] = value
    return out


def habitual(rows: list[dict[str, Any]], column: str, default: Any) -> Any:
    """The value at least 80 % of ``rows`` hold in ``column``, else ``default``."""
    values = [row[column] for row in rows if column in row]
    if not values:
        return default
    value, count = Counter(values).most_common(1)[0]
    return value if count >= _AGREE * len(values) else default


def _midnight(moment: datetime) -> datetime:
    return datetime.combine(moment.date(), datetime.min.time())


class Footprint:
    def __init__(self, planner: Planner, site: LabSite, default_user: int, rnd: random.Random) -> None:
        self.planner, self.site, self.default_user, self.rnd = planner, site, default_user, rnd

    # -- when and who ------------------------------------------------------
    def episode(self, now: datetime) -> Episode:
        """When the patient registers, its order is entered, resulted and validated, all before ``now``.

        The registration's time of day is one of the site's own (its newest patients', ±30 min), on the
        latest working day that lets the whole request end before ``now``: the planting moment of a
        timer is not the hour a desk registers patients.
        """
        pace = self.site.pace if len(self.site.pace) >= 3 else list(DEFAULT_PACE)
        drawn = self.rnd.choice(pace)  # one sample of the site: its delays go together
        # Each moved to between its neighbours among the site's: not a copy of a patient's to the millisecond,
        # and never out of the site's range (scaled by 0.8-1.2, the longest and shortest delays were canaries').
        order, result, validation, lead = (
            between_neighbours(delay, [entry[n] for entry in pace if len(entry) > n], self.rnd)
            if delay is not None else None
            for n, delay in enumerate((*drawn[:3], drawn[3] if len(drawn) > 3 else None)))
        total = order + result + validation
        latest = now - timedelta(seconds=self.rnd.uniform(1, 60))
        registered = self._registration(latest - total)
        return Episode(registered, registered + order, registered + order + result, registered + total, lead)

    def _registration(self, latest: datetime) -> datetime:
        times = self.site.registration_times
        if not times:
            return latest
        # One of the site's times of day moved to between its neighbours (±30 min put canaries before the
        # desk's first registration of the day and after its last).
        seconds = [t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6 for t in times]
        drawn = between_neighbours(self.rnd.choice(seconds), seconds, self.rnd)
        at = (datetime.min + timedelta(seconds=drawn)).time()
        day = latest.date()
        for _ in range(14):
            moment = datetime.combine(day, at)
            if moment <= latest and (self.site.weekends or day.weekday() < 5):
                return moment
            day -= timedelta(days=1)
        return latest

    def comes_back(self, patient_id: int, last: datetime, when: datetime) -> bool:
        """Whether the patient has a new request between ``last`` (its last request, or the last time this
        was asked) and ``when``, at the pace of a patient of the site.

        Each canary follows one of the site's patients (chosen from its id): that patient's
        requests per day since its first one, over the days since the canary's last request.
        Most of a lab's patients come once, a few every few months; a canary that came back
        at every drip event would stand out by its number of requests.
        """
        rates = self.site.return_rates
        if not rates:
            return False
        digest = hashlib.sha256(f"openelis-pace:{patient_id}".encode()).digest()
        rate = rates[int.from_bytes(digest[:8], "big") % len(rates)]
        days = max(0.0, (when - last).total_seconds() / 86400)
        # Requests as a Poisson process at that rate: the chance of one in these days, so that asking at each
        # drip event about the days since the previous one adds up to the site patient's number of requests.
        return self.rnd.random() < 1.0 - math.exp(-rate * days)

    def _user(self, role: str, fallback: int) -> int:
        """A user of the site for this role, as often as each appears in its audit rows."""
        habit = self.site.updates.get(("analysis", role))
        counts = (habit.users if habit is not None else None) or self.site.users.get(role) or Counter()
        if not counts:
            return fallback
        users = sorted(counts)
        return self.rnd.choices(users, weights=[counts[u] for u in users])[0]

    # -- which tests, which values -----------------------------------------
    def choose_tests(self) -> list[Test]:
        site = self.site
        usable = [t for t in site.tests.values() if self._has_values(t)]
        if site.ordered:
            usable = [t for t in usable if t.id in site.ordered] or usable
        panels: dict[str, list[Test]] = {}
        for test in sorted(usable, key=lambda t: t.id):
            panels.setdefault(panel_of(test.name), []).append(test)
        if not panels:
            return []
        names = sorted(panels)
        # How often the site orders each panel: its analyses divided by its tests (a panel of five tests
        # ordered once counts once, not five times).
        weights = [sum(site.ordered.get(t.id, 0) for t in panels[n]) / len(panels[n]) or 1 for n in names]
        chosen = {self.rnd.choices(names, weights=weights)[0]}
        if len(names) > 1 and self.rnd.random() < self._several_panels():
            # The second among the others: drawn from all of them, it was the first again one time in
            # three on the test site, and canaries had two panels in 27 % of requests against its 50 %.
            others = [n for n in names if n not in chosen]
            chosen.add(self.rnd.choices(others, weights=[w for n, w in zip(names, weights) if n not in chosen])[0])
        return [test for name in names if name in chosen for test in panels[name]]

    def _several_panels(self) -> float:
        """The share of the site's samples holding tests of two panels or more (0.4 without any)."""
        sample_of = {row["id"]: row["samp_id"] for row in self.site.items}
        tests = self.site.tests
        per_sample: dict[Any, set[str]] = {}
        for row in self.site.analyses:
            test = tests.get(row.get("test_id"))
            if test is not None and row.get("sampitem_id") in sample_of:
                per_sample.setdefault(sample_of[row["sampitem_id"]], set()).add(panel_of(test.name))
        if len(per_sample) < 20:
            return 0.4
        return sum(1 for panels in per_sample.values() if len(panels) > 1) / len(per_sample)

    def _has_values(self, test: Test) -> bool:
        return (len(self.site.results.get(test.id, [])) >= _MIN_SITE_VALUES or bool(self._limits(test, None, None))
                or interval(test.name, test.unit) is not None)

    def _limits(self, test: Test, sex: str | None, age_months: float | None) -> tuple[float, float] | None:
        for row in test.limits:
            if sex and (row.get("gender") or "").strip() not in ("", sex):
                continue
            if age_months is not None and not (row["min_age"] or 0) <= age_months < (row["max_age"] or float("inf")):
                continue
            low, high = row["low_normal"], row["high_normal"]
            if low is not None and high is not None and abs(low) != float("inf") and abs(high) != float("inf"):
                return float(low), float(high)
        return None

    def value(self, test: Test, identity: Identity, on: date) -> tuple[str, tuple[float, float] | None]:
        """A plausible result and the normal range shown with it."""
        age = (on.year - identity.birth_date.year) * 12 + on.month - identity.birth_date.month
        limits = self._limits(test, identity.sex.value, age)
        decimals = int((test.numeric_result or {}).get("significant_digits") or 0)
        seen = self.site.results.get(test.id, [])
        if len(seen) >= _MIN_SITE_VALUES:
            base = self.rnd.choice(seen)
            decimals = len(base.split(".", 1)[1]) if "." in base else 0
            number = float(base) * self.rnd.uniform(0.95, 1.05)
        elif limits is not None:
            number = self.rnd.uniform(*limits)
            decimals = decimals or 1
        else:
            reference = interval(test.name, test.unit)
            number, decimals = self.rnd.uniform(reference.low, reference.high), reference.decimals
        return f"{number:.{decimals}f}", limits

    # -- rows --------------------------------------------------------------
    def rows(self, identity: Identity, episode: Episode, accession: str, patient_id: int | None = None
             ) -> list[RowPlan]:
        """The request's rows; ``patient_id`` for a later request of a patient already written (else the
        ``patient`` row of the same insert)."""
        tests = self.choose_tests()
        if not tests:
            return []
        site, plan = self.site, self.planner
        enter = self._user("enter", self.default_user)
        resulter = self._user("result", enter)
        order, result_clock = SaveClock(episode.ordered, self.rnd), SaveClock(episode.resulted, self.rnd)
        validation = SaveClock(episode.validated, self.rnd)
        received = self._received(episode)
        sample = habits("sample", site.samples, SAMPLE_HABITS)
        sample.update({"accession_number": accession,
                       "entered_date": _midnight(episode.ordered), "received_date": received,
                       "collection_date": received if self._fills(site.samples, "collection_date") else None,
                       "status_id": site.statuses[SAMPLE_FINISHED], "sys_user_id": enter,
                       "referring_id": None, "clinical_order_id": None, "fhir_uuid": _uuid()})
        sample_at = order.reading()
        rows = plan.inserted("sample", "sample", sample, user=enter, at=sample_at)
        by_type: dict[Any, list[Test]] = {}
        for test in tests:
            by_type.setdefault(self._sample_type(test), []).append(test)
        analyses: list[tuple[str, Test]] = []
        for number, (sample_type, group) in enumerate(by_type.items(), start=1):
            item_alias = f"sample_item_{number}"
            item = habits("sample_item", site.items, ITEM_HABITS)
            item.update({"sort_order": number, "typeosamp_id": sample_type and sample_type[0],
                         "status_id": site.statuses[ITEM_ENTERED], "lastupdated": order.reading(),
                         # timestamp WITH time zone here: the JVM's local time, with its offset
                         "collection_date": sample["collection_date"] and sample["collection_date"].astimezone(),
                         "fhir_uuid": _uuid()})
            rows += plan.inserted("sample_item", item_alias, item, refs={"samp_id": Ref("sample", "id")}, user=enter)
            for test in group:
                alias = f"analysis_{test.id}"
                rows += plan.inserted("analysis", alias, self._analysis(test, sample_type, episode, received),
                                      refs={"sampitem_id": Ref(item_alias, "id")}, user=enter, at=order.reading())
                analyses.append((alias, test))
        human = {"provider_id": None, "lastupdated": order.reading()}
        refs = {"samp_id": Ref("sample", "id")}
        if patient_id is None:
            refs["patient_id"] = Ref("patient", "id")
        else:
            human["patient_id"] = patient_id
        rows += plan.inserted("sample_human", "sample_human", human, refs=refs)
        for alias, test in analyses:
            rows += plan.inserted("result", f"result_{test.id}", self._result(test, identity, episode),
                                  refs={"analysis_id": Ref(alias, "id")}, user=resulter, at=result_clock.reading())
        rows += self._updates("result", [alias for alias, _ in analyses], result_clock, resulter)
        # The validation save re-stamps what it updates, in order: analyses, results, the sample.
        validator = self._user("validation", resulter)
        for table in ("analysis", "result", "sample"):
            for row in [row for row in rows if row.table == table]:
                row.values["lastupdated"] = validation.reading()
                if table != "result":  # results do not change at validation: no U row (getChanges finds none)
                    rows += plan.updated(table, row.name, row.values["lastupdated"], validator,
                                         self._changes(table, "validation"))
        return rows

    def _updates(self, step: str, analysis_aliases: list[str], clock: SaveClock, user: int) -> list[RowPlan]:
        """The U rows of the result entry save: each analysis, then the sample (LogbookPersistServiceImpl)."""
        rows = []
        for alias in analysis_aliases:
            rows += self.planner.updated("analysis", alias, clock.reading(), user, self._changes("analysis", step))
        rows += self.planner.updated("sample", "sample", clock.reading(), user, self._changes("sample", step))
        return rows

    def _changes(self, table: str, step: str) -> bytes:
        habit = self.site.updates.get((table, step))
        return habit.changes if habit is not None else source_changes(self.site.statuses)[(table, step)]

    def _sample_type(self, test: Test) -> tuple[int, str] | None:
        """The sample type the site puts this test on (its items), else the catalogue's (sampletype_test)."""
        items = {row["id"]: row.get("typeosamp_id") for row in self.site.items}
        seen = Counter(items.get(row["sampitem_id"]) for row in self.site.analyses if row.get("test_id") == test.id)
        seen.pop(None, None)
        if not seen:
            return test.sample_type
        type_id = int(seen.most_common(1)[0][0])
        names = [row.get("type_of_sample_name") for row in self.site.analyses if row.get("test_id") == test.id]
        return type_id, habitual([{"n": n} for n in names], "n", None)

    def _fills(self, rows: list[dict[str, Any]], column: str) -> bool:
        return not rows or 2 * sum(1 for row in rows if row.get(column) is not None) >= len(rows)

    def _received(self, episode: Episode) -> datetime:
        """Reception date and time as typed on the order form (minutes) unless the site keeps seconds.

        As long before the order's entry as in the site's sample the episode's delays come from (a
        fixed 1-15 minutes put the canaries' first sample 2 minutes after their registration, the
        test site's 6); 1-15 minutes where the site tells nothing.
        """
        lead = episode.received if episode.received is not None else timedelta(minutes=self.rnd.uniform(1, 15))
        received = millis(episode.ordered - lead)
        typed = [row["received_date"] for row in self.site.samples if row.get("received_date") is not None]
        if not typed or 2 * sum(1 for t in typed if t.second == 0 and t.microsecond == 0) >= len(typed):
            if episode.received is not None:
                # the site's lead already holds the seconds its desk dropped: to the nearest minute, not down
                received += timedelta(seconds=30)
            received = received.replace(second=0, microsecond=0)
        return received

    def _analysis(self, test: Test, sample_type: tuple[int, str] | None, episode: Episode,
                  started: datetime) -> dict[str, Any]:
        same = [row for row in self.site.analyses if row.get("test_id") == test.id]
        values = {"test_sect_id": test.row.get("test_section_id"), "is_reportable": test.row.get("is_reportable")}
        values.update(habits("analysis", same or self.site.analyses, ANALYSIS_HABITS))
        values.update(habits("", same, ANALYSIS_TEST_HABITS))
        values.update({
            "test_id": test.id, "status_id": self.site.statuses[ANALYSIS_FINALIZED],
            "type_of_sample_name": habitual(same, "type_of_sample_name", sample_type and sample_type[1]),
            "started_date": started, "completed_date": _midnight(episode.resulted),
            "released_date": _midnight(episode.validated), "fhir_uuid": _uuid(), "lastupdated": episode.ordered,
        })
        return values

    def _result(self, test: Test, identity: Identity, episode: Episode) -> dict[str, Any]:
        value, limits = self.value(test, identity, episode.resulted.date())
        site_rows = self.site.result_rows
        numeric = test.numeric_result or {}
        values = {"is_reportable": test.row.get("is_reportable"), "significant_digits": numeric.get("significant_digits")}
        values.update(habits("result", site_rows, RESULT_HABITS))
        values.update({
            "result_type": "N", "value": value, "test_result_id": numeric.get("id"),
            # The range shown with the result, unless the site's results leave it NULL (older result entry).
            "min_normal": limits[0] if limits and habitual(site_rows, "min_normal", 0) is not None else None,
            "max_normal": limits[1] if limits and habitual(site_rows, "max_normal", 0) is not None else None,
            "fhir_uuid": _uuid(), "lastupdated": episode.resulted,
        })
        return values


def between_neighbours(value, values: list, rnd: random.Random):  # noqa: ANN001,ANN201 (numbers or timedeltas)
    """A value drawn between ``value``'s neighbours in the site's ``values`` (``value`` among them).

    The empirical distribution, smoothed no further than the site's own
    spacing: its range kept (no draw below its smallest or above its
    largest), no value copied from one of its rows.
    """
    ordered = sorted(values)
    if len(ordered) < 2:
        return value
    at = bisect.bisect_left(ordered, value)
    low, high = ordered[max(at - 1, 0)], ordered[min(at + 1, len(ordered) - 1)]
    if isinstance(value, timedelta):
        return low + (high - low) * rnd.random()
    return rnd.uniform(low, high)


def _uuid() -> str:
    return str(uuid.uuid4())
