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

import functools
import heapq
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping
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
    return {hour: float(n) for hour, n in sorted(hours.items())}


def draw_due_times(count: int, start: datetime, over: timedelta, rng: random.Random,
                   hours: tuple[int, int] = WORKING_HOURS, tz: str = TIMEZONE,
                   hour_weights: Mapping[int, float] | None = None) -> list[datetime]:
    """``count`` distinct random moments of working time after ``start``, sorted, UTC.

    Each falls in its own minute (drip batch labels name the minute), over the
    working minutes of [start, start + over), at a random second: evenly, or,
    with ``hour_weights`` (local hour -> weight: the site's registrations per
    hour, ``site_hour_weights``), as often in each hour as the site registers
    its patients then (a desk busy at 10:00 and quiet at 17:00).
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
        return _weighted_minutes(count, minutes, rng, hour_weights, tz)
    due = []
    for index in sorted(rng.sample(range(available), count)):
        for lo, whole in minutes:
            if index < whole:
                due.append(lo + timedelta(minutes=index, seconds=rng.randrange(60)))
                break
            index -= whole
    return due


def _weighted_minutes(count: int, minutes: list[tuple[datetime, int]], rng: random.Random,
                      hour_weights: Mapping[int, float], tz: str) -> list[datetime]:
    """``count`` distinct minutes drawn with the weight of their local hour, without replacement
    (Efraimidis-Spirakis keys: the ``count`` largest of log(u) / weight)."""
    zone = ZoneInfo(tz)
    keyed = []
    for lo, whole in minutes:
        local = lo.astimezone(zone)
        for offset in range(whole):
            weight = hour_weights.get((local + timedelta(minutes=offset)).hour, 0.0)
            if weight > 0:
                keyed.append((math.log(1.0 - rng.random()) / weight, lo, offset))
    if count > len(keyed):
        raise ConfigError(f"cannot fit {count} plantings in the {len(keyed)} working minutes of the hours "
                          "this site registers patients: lengthen --over or lower --count")
    chosen = heapq.nlargest(count, keyed)
    return sorted(lo + timedelta(minutes=offset, seconds=rng.randrange(60)) for _key, lo, offset in chosen)


def _check_hours(hours: tuple[int, int]) -> None:
    if not (0 <= hours[0] < hours[1] <= 23):
        raise ConfigError(f"working hours must be two hours like 8-18, not {hours[0]}-{hours[1]}")


def _describe(over: timedelta) -> str:
    if over % timedelta(days=1) == timedelta():
        return f"{over.days} days"
    return f"{over.total_seconds() / 3600:g} hours"
