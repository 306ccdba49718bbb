"""When drip plantings happen: random minutes of French working hours.

Real patients are registered on working days, in office hours, at irregular
moments. Canaries planted the same way interleave with them: their ids and
creation timestamps do not stand out. This module is pure computation (no
registry, no I/O): durations, working windows and the random draw.

Working time is Monday to Friday, ``working_hours`` (default 8:00-18:00) in
Europe/Paris, except French public holidays (metropolitan list: Alsace-Moselle
extras are not excluded).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from canary.errors import ConfigError

WORKING_HOURS = (8, 18)  # from 8:00 to 18:00 local time
TIMEZONE = "Europe/Paris"

_DURATION = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
          "w": timedelta(weeks=1)}


def parse_duration(text: str) -> timedelta:
    """ "30d", "12h", "2w", "90m", or combined like "1w3d" -> timedelta."""
    value = str(text).strip().lower().replace(" ", "")
    parts = _DURATION.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise ConfigError(f"--over {text!r} is not a duration: write it like 30d, 12h, 2w or 90m")
    total = sum((int(n) * _UNITS[u] for n, u in parts), timedelta())
    if total <= timedelta():
        raise ConfigError("--over must be longer than zero")
    return total


def easter(year: int) -> date:
    """Easter Sunday (Gregorian, anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    lk = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 19 * lk) // 433
    month, day = divmod(h + lk - 7 * m + 114, 31)
    return date(year, month, day + 1)


@functools.cache
def french_holidays(year: int) -> frozenset[date]:
    """Public holidays of metropolitan France (jours fériés)."""
    sunday = easter(year)
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    movable = [sunday + timedelta(days=n) for n in (1, 39, 50)]  # Easter Monday, Ascension, Whit Monday
    return frozenset([date(year, m, d) for m, d in fixed] + movable)


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in french_holidays(day.year)


def in_working_hours(moment: datetime, hours: tuple[int, int] = WORKING_HOURS,
                     tz: str = TIMEZONE) -> bool:
    local = moment.astimezone(ZoneInfo(tz))
    return is_working_day(local.date()) and hours[0] <= local.hour < hours[1]


def working_windows(start: datetime, end: datetime, hours: tuple[int, int] = WORKING_HOURS,
                    tz: str = TIMEZONE) -> list[tuple[datetime, datetime]]:
    """The working-time intervals within [start, end), as UTC datetimes."""
    _check_hours(hours)
    zone = ZoneInfo(tz)
    windows = []
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    while day <= last:
        if is_working_day(day):
            opens = datetime.combine(day, time(hours[0]), zone).astimezone(timezone.utc)
            closes = datetime.combine(day, time(hours[1]), zone).astimezone(timezone.utc)
            lo, hi = max(opens, start), min(closes, end)
            if lo < hi:
                windows.append((lo, hi))
        day += timedelta(days=1)
    return windows


MIN_SITE_REGISTRATIONS = 50  # fewer say too little of a site's hours: working minutes drawn evenly then


def site_hour_weights(registrations: Iterable[datetime] | None, tz: str = TIMEZONE) -> dict[int, float] | None:
    """Registrations per local hour of the day, from a site's registration times (naive: the site's
    own wall clock, as the seeders read them); None when fewer than ``MIN_SITE_REGISTRATIONS``."""
    zone = ZoneInfo(tz)
    hours = Counter((r.astimezone(zone) if r.tzinfo else r).hour for r in registrations or ())
    if sum(hours.values()) < MIN_SITE_REGISTRATIONS:
        return None
    # Smoothed over the neighbouring hours (1-2-1, among the hours the site registers at: never one it
    # does not): a year's few hundred registrations leave each hour's count 10-15 % off the desk's
    # habit, and the drip would copy that noise (0.3 h early on the test site's hours).
    smoothed = {}
    for hour in hours:
        near = [(k, hours[hour + d]) for d, k in ((-1, 1.0), (0, 2.0), (1, 1.0)) if hours.get(hour + d)]
        smoothed[hour] = sum(k * n for k, n in near) / sum(k for k, _n in near)
    return {hour: smoothed[hour] for hour in sorted(smoothed)}


def draw_due_times(count: int, start: datetime, over: timedelta, rng: random.Random,
                   hours: tuple[int, int] = WORKING_HOURS, tz: str = TIMEZONE,
                   hour_weights: Mapping[int, float] | None = None,
                   growth: Growth | None = None) -> list[datetime]:
    """``count`` distinct random moments of working time after ``start``, sorted, UTC.

    Each falls in its own minute (drip batch labels name the minute), over the
    working minutes of [start, start + over), at a random second: evenly, or,
    with ``hour_weights`` (local hour -> weight: the site's registrations per
    hour, ``site_hour_weights``), as often in each hour as the site registers
    its patients then (a desk busy at 10:00 and quiet at 17:00), and with
    ``growth`` (``site_growth``) more of them on days the site's trend says
    more patients come; stratified (``_weighted_minutes``).
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    first_minute = start.astimezone(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
    minutes: list[tuple[datetime, int]] = []  # (window start, whole minutes in it)
    for lo, hi in working_windows(first_minute, start + over, hours, tz):
        lo = lo.replace(second=0, microsecond=0)
        whole = int((hi - lo).total_seconds() // 60)
        if whole > 0:
            minutes.append((lo, whole))
    available = sum(n for _, n in minutes)
    if count > available:
        raise ConfigError(
            f"cannot fit {count} plantings in the {available} working minutes of the next "
            f"{_describe(over)}: lengthen --over or lower --count"
        )
    if hour_weights:
        return _weighted_minutes(count, minutes, rng, hour_weights, tz, growth)
    due = []
    for index in sorted(rng.sample(range(available), count)):
        for lo, whole in minutes:
            if index < whole:
                due.append(lo + timedelta(minutes=index, seconds=rng.randrange(60)))
                break
            index -= whole
    return due


def _weighted_minutes(count: int, minutes: list[tuple[datetime, int]], rng: random.Random,
                      hour_weights: Mapping[int, float], tz: str, growth: Growth | None = None) -> list[datetime]:
    """``count`` distinct minutes, each day as likely as the site's registrations make it (its hours'
    weights, times ``growth``'s pace that day) and each minute of the day as likely as its hour's weight.

    Stratified (a Latin hypercube over day and time of day): the i-th planting's day is drawn within the
    i-th ``count``-quantile of the period's weight, its time of day within a shuffled quantile of the
    day's. Each moment is still a draw from the site's own distribution, but thirty of them cover it as
    evenly as thirty can: independent draws land a quarter of an hour or weeks off the site's median by
    chance alone (30 draws: about 0.4 h on the hour, a month on the age), and a classifier reads that."""
    zone = ZoneInfo(tz)
    days: dict[date, list[tuple[datetime, float]]] = {}
    for lo, whole in minutes:
        local = lo.astimezone(zone)
        for offset in range(whole):
            moment = local + timedelta(minutes=offset)
            weight = hour_weights.get(moment.hour, 0.0)
            if weight > 0:
                days.setdefault(moment.date(), []).append((lo + timedelta(minutes=offset), weight))
    available = sum(len(v) for v in days.values())
    if count > available:
        raise ConfigError(f"cannot fit {count} plantings in the {available} working minutes of the hours "
                          "this site registers patients: lengthen --over or lower --count")
    order = sorted(days)
    day_weight = [sum(w for _m, w in days[d]) * (growth.weight(days[d][0][0]) if growth else 1.0) for d in order]
    day_cumulative = list(itertools.accumulate(day_weight))
    within = {d: list(itertools.accumulate(w for _m, w in days[d])) for d in order}
    shuffled = list(range(count))
    rng.shuffle(shuffled)
    taken: set[datetime] = set()
    due = []
    for i in range(count):
        at = (i + rng.random()) / count * day_cumulative[-1]
        index = min(bisect.bisect_right(day_cumulative, at), len(order) - 1)
        minute = _free_minute(days, order, within, index, (shuffled[i] + rng.random()) / count, taken)
        taken.add(minute)
        due.append(minute + timedelta(seconds=rng.randrange(60)))
    return sorted(due)


def _free_minute(days: Mapping[date, list[tuple[datetime, float]]], order: list[date],
                 within: Mapping[date, list[float]], index: int, quantile: float, taken: set[datetime]) -> datetime:
    """The minute at ``quantile`` of the day's weight, else the nearest one not taken (that day first,
    then the nearest days)."""
    for step in range(len(order)):
        for near in ((index,) if step == 0 else (index - step, index + step)):
            if not 0 <= near < len(order):
                continue
            slots, cumulative = days[order[near]], within[order[near]]
            start = min(bisect.bisect_right(cumulative, quantile * cumulative[-1]), len(slots) - 1)
            for shift in range(len(slots)):
                for k in ((start,) if shift == 0 else (start - shift, start + shift)):
                    if 0 <= k < len(slots) and slots[k][0] not in taken:
                        return slots[k][0]
    raise AssertionError("unreachable: fewer plantings than minutes was checked")


YEAR = timedelta(days=365.25)
# How far a site's trend is followed: its pace at most halved or doubled over the drip period.
GROWTH_BOUNDS = (0.5, 2.0)


@dataclass(frozen=True)
class Growth:
    """A site's registrations per day as a straight line fitted to the year before ``until``, extended
    beyond it: ``weight`` is the pace at a moment relative to the pace at ``until``."""

    until: datetime  # aware
    slope: float  # relative change of the pace per year, at ``until``

    def weight(self, moment: datetime) -> float:
        years = (moment - self.until) / YEAR
        return min(GROWTH_BOUNDS[1], max(GROWTH_BOUNDS[0], 1.0 + self.slope * years))


def site_growth(registrations: Iterable[datetime] | None, until: datetime, tz: str = TIMEZONE) -> Growth | None:
    """The trend of a site's registrations over the year before ``until`` (naive times: the site's own
    wall clock), for drip moments drawn as the site's new patients come: more of them later in the
    period when the practice grows. None when fewer than ``MIN_SITE_REGISTRATIONS``.

    The line's slope is read from the registrations' mean position in the year (a uniform pace puts it
    at the middle; a linear one, 1 + b (x - 1/2) over x in [0, 1], at 1/2 + b/12), shrunk by its
    sampling noise (b * b^2 / (b^2 + se^2): a few hundred registrations hint at a trend, not prove it)."""
    zone = ZoneInfo(tz)
    if until.tzinfo is None:
        raise ValueError("until must be timezone-aware")
    moments = [r if r.tzinfo else r.replace(tzinfo=zone) for r in registrations or ()]
    first = until - timedelta(days=365)
    moments = [m for m in moments if first <= m < until]
    if len(moments) < MIN_SITE_REGISTRATIONS:
        return None
    span = until - max(first, min(moments))
    if span < timedelta(days=30):
        return None
    mean = sum((m - until + span) / span for m in moments) / len(moments)
    b = max(-2.0, min(2.0, 12.0 * (mean - 0.5)))
    se = 12.0 * (1.0 / math.sqrt(12.0)) / math.sqrt(len(moments))
    b = b * b * b / (b * b + se * se) if b else 0.0
    # Pace at the year's end relative to its mean: 1 + b/2; its change per year there: b / (1 + b/2) per span.
    return Growth(until, (b / (1.0 + b / 2.0)) * (YEAR / span))


def _check_hours(hours: tuple[int, int]) -> None:
    if not (0 <= hours[0] < hours[1] <= 23):
        raise ConfigError(f"working hours must be two hours like 8-18, not {hours[0]}-{hours[1]}")


def _describe(over: timedelta) -> str:
    if over % timedelta(days=1) == timedelta():
        return f"{over.days} days"
    return f"{over.total_seconds() / 3600:g} hours"
