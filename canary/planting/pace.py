"""How fast drip may plant: canaries stay a small share of the site's new patients.

Thirty canaries planted over six weeks into a site that registers two patients
a day make a quarter of its admissions of those weeks: whoever counts new
patients per week sees the bump, and a classifier learns "recent" as
"canary". Drip therefore ties its pace to what the target itself shows
(``Seeder.admissions_since``, read only):

- when scheduling (`canary plant SOURCE --count N --over D`): the site's rate
  over the last year says how many patients D brings; N canaries must stay
  within ``drip.max_share`` of them (with the canaries), else one error line
  says the shortest ``--over`` that fits;
- before each planting (`canary drip run`): in the trailing
  ``drip.pace_window``, the source's canaries planted plus this one must stay
  within ``drip.max_share`` of every patient registered in that window; if
  not, the slot waits for later runs.

Seeders that cannot count admissions (``None``) are not paced; the report says so.
Pure computation plus the settings: no registry, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

from canary.config import Setting
from canary.errors import ConfigError

SETTINGS: tuple[Setting, ...] = (
    Setting("drip.max_share", 0.02,
            "Canaries may be at most this share of a source's new patients in any drip.pace_window "
            "(0.02: 1 in 50); `canary plant --over` refuses a schedule the site's admission rate cannot hide, "
            "`canary drip run` holds a slot back until enough real patients arrived. 0 turns pacing off."),
    Setting("drip.pace_window", "30d",
            "The sliding window over which drip.max_share is checked before each drip planting."),
    Setting("drip.timer_slot", "10m",
            "How often `canary drip run` is started (the systemd timer's period): each run plants the slots due "
            "before the next one, each at its own moment within the slot (overdue ones at a random moment), "
            "so creation times carry no trace of the timer. 0m plants at once."),
    Setting("drip.event_every", "site",
            "Mean time between the later events (a visit, a result) `canary drip run` adds to each planted "
            "canary through its seeder (never less than a week apart; seeders without events are skipped). "
            "site: the gap between two visits of a patient the seeder learned from the site when it planted "
            "the canary (OpenEMR), else 60d. 0d: none."),
)
RATE_HISTORY = timedelta(days=365)  # admissions read to learn the site's rate when scheduling
HOURS_HISTORY = 2 * RATE_HISTORY  # admissions read to learn the hours the site registers at


@dataclass(frozen=True, slots=True)
class DripSettings:
    max_share: float = 0.02
    pace_window: timedelta = timedelta(days=30)
    timer_slot: timedelta = timedelta(minutes=10)
    event_every: timedelta | None = None  # None: the site's pace, as the seeder learned it (else 60 days)


def drip_settings(raw: Mapping[str, Any]) -> DripSettings:
    """The [drip] table of canary.toml, checked."""
    from canary.planting.schedule import parse_duration

    table = raw.get("drip") or {}
    share = table.get("max_share", 0.02)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
        raise ConfigError("drip.max_share must be a number from 0 to 1 (0.02 is 2 %; 0 turns pacing off)")
    try:
        window = parse_duration(str(table.get("pace_window", "30d")))
    except ConfigError:
        raise ConfigError("drip.pace_window must be a duration like 30d or 2w") from None
    slot = _duration_or_zero(table, "timer_slot", "10m")
    every = None if str(table.get("event_every", "site")).strip().lower() == "site" else \
        _duration_or_zero(table, "event_every", "60d")
    return DripSettings(float(share), window, slot, every)


def _duration_or_zero(table: Mapping[str, Any], key: str, default: str) -> timedelta:
    from canary.planting.schedule import parse_duration

    text = str(table.get(key, default)).strip().lower()
    if text.rstrip("mhdw") == "0":
        return timedelta()
    try:
        return parse_duration(text)
    except ConfigError:
        raise ConfigError(f"drip.{key} must be a duration like {default} (or 0)") from None


def canaries_allowed(real_patients: int, share: float) -> int:
    """How many canaries ``real_patients`` new patients can hide at ``share`` (canaries counted in)."""
    return math.floor(share * real_patients / (1 - share) + 1e-9)


def may_plant(admissions: int, canaries: int, share: float) -> bool:
    """Whether one more canary keeps canaries within ``share`` of the window's new patients.

    ``admissions`` counts every patient registered in the window, canaries included.
    """
    if share <= 0:
        return True
    real = max(0, admissions - canaries)
    return canaries + 1 <= canaries_allowed(real, share)


def check_schedule(count: int, over: timedelta, admission_times: list[datetime] | None, now: datetime,
                   share: float, source: str) -> float | None:
    """Refuse a schedule the site's observed rate cannot hide; the site's rate per day (None: unknown)."""
    if share <= 0 or admission_times is None:
        return None
    if not admission_times:
        raise ConfigError(f"source '{source}': no patient registered in the target over the last year, so "
                          f"no canary can pass for a new one; set drip.max_share = 0 to plant anyway")
    history = max(now.replace(tzinfo=None) - min(admission_times), timedelta(days=1))
    history = min(history, RATE_HISTORY)
    per_day = len(admission_times) / (history / timedelta(days=1))
    expected = per_day * (over / timedelta(days=1))
    if count > canaries_allowed(int(expected), share):
        needed = math.ceil(count * (1 - share) / share / per_day)
        raise ConfigError(
            f"source '{source}': at this site's pace ({per_day:.1f} new patients a day over the last "
            f"{history.days} days), {count} canaries stay within {share:.0%} of new patients only over "
            f"{needed} days or more: use --over {needed}d (or lower --count, or raise drip.max_share)")
    return per_day
