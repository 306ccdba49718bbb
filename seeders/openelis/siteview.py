"""The OpenELIS site as whoever holds a copy of ``clinlims`` sees it, read only, for the separability audit.

A patient is split over two rows (``patient`` and its ``person``), and its
laboratory life does not point at ``patient`` directly: requests link to it
through ``sample_human``, results hang off ``sample_item`` -> ``analysis``.
An attacker joins them, so the audit does too: the patient row with its
person's columns (``person.last_name``...), the tables whose foreign key
points at ``patient`` (``sample_human``, ``patient_identity``,
``patient_contact``..., found by ``layout_with_links``), and per patient the
samples, analyses and results reached through ``sample_human`` (counted, with
the first one's time). Whole-table queries only (a GROUP BY per chain), so a
large site is read in seconds.

``site_postcodes`` gives the drip its catchment: where the site's patients live.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from functools import cache
from datetime import datetime
from typing import Any, Iterator

import sqlalchemy as sa

from canary.identity import refdata
from seeders.base import AuditPatient
from seeders.common.transforms import strip_accents
from seeders.sql.siteread import PatientLayout, layout_with_links, read_patients
from seeders.sql.target import SqlTarget

# The registration time is the patient row's first lastupdated (a new order for a known patient does not
# re-save it); no postcode on patient (person.zip_code is NULL on the React form's patients).
PATIENT_LAYOUT = PatientLayout(table="patient", key=("id",), created="lastupdated", postcode=None, birth="birth_date",
                               related=(("sample_human", "patient_id"), ("patient_identity", "patient_id"),
                                        ("patient_contact", "patient_id")))
PERSON_PREFIX = "person."


def audit_patients(target: SqlTarget, limit: int | None = None) -> Iterator[AuditPatient]:
    patients = list(read_patients(target, layout_with_links(target, PATIENT_LAYOUT), limit))
    people = _people(target)
    chains = _laboratory_counts(target)
    for patient in patients:
        values = dict(patient.values)
        # patient.id is numeric(10): the registry keeps the placement's key as a number, so does the ref
        ref = (patient.ref[0], tuple((k, _number(v)) for k, v in patient.ref[1]))
        person = people.get(values.get("person_id"), {})
        values.update({PERSON_PREFIX + name: value for name, value in person.items() if name != "id"})
        related, first = dict(patient.related), dict(patient.related_first)
        for name, per_patient in chains.items():
            count, earliest = per_patient.get(values.get("id"), (0, None))
            related[name], first[name] = count, earliest
        yield replace(patient, ref=ref, values=values, related=related, related_first=first)


def _people(target: SqlTarget) -> dict[Any, dict[str, Any]]:
    person = target.table("person")
    if person is None:
        return {}
    with target.engine.connect() as conn:
        result = conn.execute(sa.select(person))
        names = list(result.keys())
        rows = [dict(zip(names, row)) for row in result]
    return {row["id"]: row for row in rows}


def _laboratory_counts(target: SqlTarget) -> dict[str, dict[Any, tuple[int, datetime | None]]]:
    """Per patient: samples, analyses and results reached through sample_human, with the first one's time."""
    t = {name: target.table(name) for name in ("sample_human", "sample", "sample_item", "analysis", "result")}
    if any(table is None for table in t.values()):
        return {}
    human, sample, item, analysis, result = t.values()
    chains = {
        "sample (via sample_human)": (sample.c.id, sample.c.received_date,
                                      human.join(sample, sample.c.id == human.c.samp_id)),
        "analysis (via sample_human)": (analysis.c.id, analysis.c.lastupdated,
                                        human.join(item, item.c.samp_id == human.c.samp_id)
                                        .join(analysis, analysis.c.sampitem_id == item.c.id)),
        "result (via sample_human)": (result.c.id, result.c.lastupdated,
                                      human.join(item, item.c.samp_id == human.c.samp_id)
                                      .join(analysis, analysis.c.sampitem_id == item.c.id)
                                      .join(result, result.c.analysis_id == analysis.c.id)),
    }
    out: dict[str, dict[Any, tuple[int, datetime | None]]] = {}
    with target.engine.connect() as conn:
        for name, (key, stamp, joined) in chains.items():
            query = sa.select(human.c.patient_id, sa.func.count(sa.distinct(key)), sa.func.min(stamp)) \
                .select_from(joined).group_by(human.c.patient_id)
            out[name] = {patient: (count, _naive(first)) for patient, count, first in conn.execute(query)}
    return out


def _number(value: Any) -> Any:
    text = str(value)
    return int(text) if text.isdigit() else value


def site_postcodes(target: SqlTarget, limit: int = 5000) -> Counter[str] | None:
    """Postcodes of the ``limit`` newest patients: ``person.zip_code`` where filled, else the postcodes of
    the commune named in ``person.city`` (the React form has no postcode field); None: neither is known."""
    patient, person = target.table("patient"), target.table("person")
    if patient is None or person is None:
        return None
    query = (sa.select(person.c.zip_code, person.c.city).join(patient, patient.c.person_id == person.c.id)
             .order_by(patient.c.lastupdated.desc(), patient.c.id.desc()).limit(limit))
    with target.engine.connect() as conn:
        rows = conn.execute(query).all()
    by_name = _postcodes_by_commune_name()
    found: Counter[str] = Counter()
    for zip_code, city in rows:
        if isinstance(zip_code, str) and zip_code.strip():
            found[zip_code.strip()] += 1
            continue
        codes = by_name.get(_folded(city), ())
        for code in codes:  # a commune with several postcodes: its patients shared among them
            found[code] += 1 / len(codes)
    return Counter({code: n for code, n in found.items() if n >= 1}) or None


def _folded(name: Any) -> str:
    return strip_accents(str(name or "")).upper().replace("-", " ").replace("'", " ").strip()


@cache
def _postcodes_by_commune_name() -> dict[str, tuple[str, ...]]:
    """Commune name (folded) -> its postcodes, for names the site wrote without a postcode. Built once
    per process from the reference tables: folding their 39,000 names took 0.4 s at each planting (a
    drip run plants several canaries; the OpenELIS concealment test 30, 13 s of its time)."""
    names: dict[str, set[str]] = {}
    for code, communes in refdata.communes_by_postcode().items():
        for commune in communes:
            if len(commune.departement) == 2:
                names.setdefault(_folded(commune.name), set()).add(code)
    return {name: tuple(sorted(codes)) for name, codes in names.items()}


def _naive(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None) if value.tzinfo else value
    return None
