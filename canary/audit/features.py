"""Per-patient features an attacker computes from a dump, for the separability audit.

``build_features(patients)`` turns the rows a seeder reads
(``Seeder.patients_for_audit``) into a numeric matrix, one row per patient,
one column per feature, with NaN where a feature does not apply. The
features are the tells of docs/concealment.md:

- fill pattern per column: NULL, '' (or blanks), upper case;
- dates (birth dates): how many years before the newest one, i.e. the ages;
- timestamps: sub-second precision, recency (days before the newest row),
  hour of day, delay between two timestamps of the row (creation to update);
- values a few staff pick from (creating user, origin, doctor): how common
  the patient's value is at the site;
- related rows: how many per table, none at all, first one how long after
  the registration, and in the same second as it;
- contact points: how many patients share the email domain and the
  10,000-number phone block, and how many of those were registered recently.

Nothing here reads a database or the registry. Each feature has a ``kind``
that ``canary/audit/separability.py`` turns into a fix.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterable, Sequence

import numpy as np

# A column with at most this many distinct values is a pick list (creating user, origin).
PICK_LIST = 60
RECENT_DAYS = 90  # "registered recently", for contact-point clustering
_TEXT_STAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?$")
_EMAIL = re.compile(r"^[^@\s]+@([A-Za-z0-9.-]+\.[A-Za-z]{2,})$")
_PHONE_CHARS = re.compile(r"[\s.\-()/]")


@dataclass(frozen=True, slots=True)
class Feature:
    name: str  # "patients.cree_le:subsecond"
    kind: str  # null, empty, upper, subsecond, age, years, hour, delay, share, count, none, first, same_second,
    #            domain, domain_recent, block, block_recent, no_email, no_phone
    subject: str  # the column, table or contact point it is about


@dataclass
class FeatureMatrix:
    features: list[Feature]
    values: np.ndarray  # patients x features, float, NaN = not applicable

    def column(self, name: str) -> np.ndarray:
        return self.values[:, [f.name for f in self.features].index(name)]


def build_features(patients: Sequence[Any], population: Sequence[Any] | None = None) -> FeatureMatrix:
    """Features of ``patients`` (``AuditPatient`` values), constant columns dropped.

    ``population`` (default: ``patients``) is the whole site when ``patients``
    is a sample: how many patients share a domain or a number block is
    counted over all of them, as an attacker holding the dump counts.
    """
    columns: dict[Feature, list[float]] = {}
    n = len(patients)

    def put(feature: Feature, values: list[float]) -> None:
        columns[feature] = values

    table = patients[0].ref[0] if patients else "patients"
    key_columns = {k for k, _ in patients[0].ref[1]} if patients else set()
    names = [c for c in (patients[0].values if patients else {}) if c not in key_columns]
    created = [_stamp(p.created) for p in patients]
    for name in names:
        raw = [p.values.get(name) for p in patients]
        _column_features(table, name, raw, created, put)
    _related_features(patients, created, put)
    _contact_features(patients, created, put, population)
    kept = [(f, v) for f, v in columns.items() if len(v) == n and _varies(v)]
    matrix = np.array([v for _, v in kept], dtype=float).T if kept else np.zeros((n, 0))
    return FeatureMatrix([f for f, _ in kept], matrix)


def _column_features(table: str, name: str, raw: list[Any], created: list[datetime | None], put) -> None:
    subject = f"{table}.{name}"
    put(Feature(f"{subject}:null", "null", subject), [1.0 if v is None else 0.0 for v in raw])
    texts = [v for v in raw if isinstance(v, str)]
    if texts:
        put(Feature(f"{subject}:empty", "empty", subject),
            [1.0 if isinstance(v, str) and not v.strip() else 0.0 for v in raw])
        put(Feature(f"{subject}:upper", "upper", subject), [_upper(v) for v in raw])
    stamps = [_stamp(v) for v in raw]
    if sum(s is not None for s in stamps) >= max(1, len(raw) // 2):
        _time_features(subject, raw, stamps, created, put)
        return
    days = [v for v in raw if isinstance(v, date) and not isinstance(v, datetime)]
    if len(days) >= max(1, len(raw) // 2):
        newest = max(days)
        put(Feature(f"{subject}:years", "years", subject),
            [(newest - v).days / 365.25 if isinstance(v, date) else math.nan for v in raw])
        return
    hashable = [v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for v in raw]
    counts = Counter(hashable)
    if 1 < len(counts) <= PICK_LIST:
        total = len(raw)
        put(Feature(f"{subject}:share", "share", subject), [counts[v] / total for v in hashable])


def _time_features(subject: str, raw: list[Any], stamps: list[datetime | None],
                   created: list[datetime | None], put) -> None:
    newest = max(s for s in stamps if s is not None)
    put(Feature(f"{subject}:subsecond", "subsecond", subject),
        [_subsecond(v, s) for v, s in zip(raw, stamps)])
    put(Feature(f"{subject}:age", "age", subject),
        [math.log1p(max(0.0, (newest - s).total_seconds() / 86400)) if s else math.nan for s in stamps])
    put(Feature(f"{subject}:hour", "hour", subject),
        [s.hour + s.minute / 60 if s and (s.hour or s.minute or s.second) else math.nan for s in stamps])
    if any(c is not None for c in created) and [s for s in stamps] != created:
        put(Feature(f"{subject}:delay", "delay", subject),
            [_log_delay(c, s) for c, s in zip(created, stamps)])


def _related_features(patients: Sequence[Any], created: list[datetime | None], put) -> None:
    tables = sorted({t for p in patients for t in p.related})
    for name in tables:
        counts = [p.related.get(name, 0) for p in patients]
        put(Feature(f"{name}:rows", "count", name), [math.log1p(c) for c in counts])
        put(Feature(f"{name}:none", "none", name), [1.0 if c == 0 else 0.0 for c in counts])
        firsts = [_stamp(p.related_first.get(name)) for p in patients]
        if any(f is not None for f in firsts) and any(c is not None for c in created):
            put(Feature(f"{name}:first_after", "first", name),
                [_log_delay(c, f) for c, f in zip(created, firsts)])
            put(Feature(f"{name}:same_second", "same_second", name),
                [math.nan if c is None or f is None else float(abs((f - c).total_seconds()) < 1)
                 for c, f in zip(created, firsts)])


def _contact_features(patients: Sequence[Any], created: list[datetime | None], put,
                      population: Sequence[Any] | None) -> None:
    """Patients per email domain and per 10,000-number block, and how many of them are recent."""
    # The contact columns are chosen once, on the whole site: chosen on the sample they could differ,
    # and a sample's key would then be missing from the site's counts.
    columns = _contact_columns(population if population is not None else patients)
    domains, blocks = _contact_keys(patients, columns)
    if population is None or population is patients:
        all_domains, all_blocks, all_created = domains, blocks, created
    else:
        all_domains, all_blocks = _contact_keys(population, columns)
        all_created = [_stamp(p.created) for p in population]
    known = [c for c in all_created if c is not None]
    recent_from = max(known) if known else None
    for kind, keys, every in (("domain", domains, all_domains), ("block", blocks, all_blocks)):
        if not any(keys):
            continue
        counts = Counter(k for k in every if k)
        recent = Counter(k for k, c in zip(every, all_created)
                         if k and c and recent_from and (recent_from - c).days <= RECENT_DAYS)
        label = "email domain" if kind == "domain" else "phone block"
        put(Feature(f"{label}:patients", kind, label),
            [math.log1p(counts[k]) if k else math.nan for k in keys])
        put(Feature(f"{label}:recent_share", f"{kind}_recent", label),
            [recent[k] / counts[k] if k else math.nan for k in keys])
        put(Feature(f"{label}:missing", f"no_{'email' if kind == 'domain' else 'phone'}", label),
            [0.0 if k else 1.0 for k in keys])


def _contact_keys(patients: Sequence[Any], columns: list[str]) -> tuple[list[str | None], list[str | None]]:
    """Per patient: the first email domain and the first phone block found (None: none)."""
    domains: list[str | None] = []
    blocks: list[str | None] = []
    for patient in patients:
        found_domain = found_block = None
        for value in _contact_values(patient, columns):
            if found_domain is None:
                match = _EMAIL.match(value)
                if match:
                    found_domain = match.group(1).lower()
                    continue
            if found_block is None:
                found_block = phone_block(value)
        domains.append(found_domain)
        blocks.append(found_block)
    return domains, blocks


def _contact_columns(patients: Sequence[Any], sample: int = 500) -> list[str]:
    """Columns of the patient row holding emails or phone numbers (in a fifth of a sample at least)."""
    hits: Counter[str] = Counter()
    seen = patients[:sample]
    for patient in seen:
        for name, value in patient.values.items():
            if isinstance(value, str) and (_EMAIL.match(value.strip()) or phone_block(value)):
                hits[name] += 1
    return [name for name, n in hits.items() if n * 5 >= len(seen)]


def _contact_values(patient: Any, columns: list[str]) -> Iterable[str]:
    for name in columns:
        value = patient.values.get(name)
        if isinstance(value, str):
            yield value.strip()
    for value in getattr(patient, "contacts", ()) or ():
        yield value


def phone_block(text: str) -> str | None:
    """The 10,000-number block of a French phone number (all but the last four digits), or None."""
    digits = _PHONE_CHARS.sub("", text)
    if digits.startswith("+33"):
        digits = "0" + digits[3:]
    elif digits.startswith("0033"):
        digits = "0" + digits[4:]
    if len(digits) != 10 or not digits.isdigit() or digits[0] != "0" or digits[1] == "0":
        return None
    return digits[:6]


def registration_stamp(value: Any) -> datetime | None:
    """A patient's registration moment as the features compare it (naive, or None)."""
    return _stamp(value)


def _stamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, str) and _TEXT_STAMP.match(value.strip()):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _subsecond(raw: Any, stamp: datetime | None) -> float:
    if stamp is None:
        return math.nan
    if isinstance(raw, str):
        return 1.0 if "." in raw else 0.0
    return 1.0 if stamp.microsecond else 0.0


def _log_delay(start: datetime | None, end: datetime | None) -> float:
    if start is None or end is None:
        return math.nan
    seconds = (end - start).total_seconds()
    return math.copysign(math.log1p(abs(seconds)), seconds)


def _upper(value: Any) -> float:
    if not isinstance(value, str) or not any(ch.isalpha() for ch in value):
        return math.nan
    return 1.0 if value == value.upper() else 0.0


def _varies(values: list[float]) -> bool:
    seen = {v for v in values if not math.isnan(v)}
    return len(seen) > 1 or (len(seen) == 1 and any(math.isnan(v) for v in values))
