"""A canary's first clinical footprint, as the site records one: a visit, a vitals encounter, its obs.

A patient nobody ever saw is easy to tell apart (issue #12): so, where the
site itself records vital signs, a canary gets, at the site's own rate, what
a check-in with triage writes through the API:

* ``visit`` (``VisitServiceImpl.saveVisit``): the site's usual visit type
  and location, started when the patient was registered, still open (the
  site's stale-visit task closes visits, not the registration);
* ``encounter`` (``EncounterServiceImpl.saveEncounter``) of the site's usual
  vitals encounter type and form, in that visit, with ``encounter_datetime``
  the visit start, and its ``encounter_provider`` row: the provider and role
  who record most of the site's recent vitals;
* one ``obs`` per vital sign the site records, on the CIEL concepts the O3
  vitals form uses (``openmrs-esm-patient-chart`` ``esm-patient-vitals-app``
  config: 5085 systolic, 5086 diastolic, 5087 pulse, 5088 temperature, 5089
  weight, 5090 height, 5092 SpO2, 5242 respiratory rate), found by their CIEL
  uuid (code followed by ``A``s) since ``concept_id`` is the CIEL code only
  in CIEL-built dictionaries; ``status = 'FINAL'``, plausible values for the
  canary's sex and age.

Everything is learned, read only, from the site's 200 newest vitals
encounters; a site that records none gets no footprint (one where only the
canaries had vitals would stand out as much). Written in SQL, nothing here
fires an OpenMRS event (event module, atomfeed): no message leaves the site.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterator

import sqlalchemy as sa

from canary.model import Identity
from seeders.sql.rows import AUTOINCREMENT, Generated, Ref, RowPlan
from seeders.sql.target import SqlTarget

SAMPLE = 200
# CIEL code -> (what, plausible range for an adult, decimals)
VITALS: dict[int, tuple[str, tuple[float, float], int]] = {
    5085: ("systolic blood pressure", (100, 150), 0),
    5086: ("diastolic blood pressure", (60, 95), 0),
    5087: ("pulse", (55, 100), 0),
    5088: ("temperature", (36.1, 37.6), 1),
    5089: ("weight", (50, 100), 1),
    5090: ("height", (150, 190), 0),
    5092: ("oxygen saturation", (95, 100), 0),
    5242: ("respiratory rate", (12, 20), 0),
}
TABLES = ("visit", "encounter", "encounter_provider", "obs", "concept", "provider")
KEYS = {"visit": "visit_id", "encounter": "encounter_id", "encounter_provider": "encounter_provider_id",
        "obs": "obs_id"}


def ciel_uuid(code: int) -> str:
    text = str(code)
    return text + "A" * (36 - len(text))


@dataclass(frozen=True, slots=True)
class VitalsHabit:
    """How the site records vital signs, learned from its newest vitals encounters."""

    rate: float  # share of the newest patients who have a vitals encounter
    encounter_type: int
    location: int | None
    form: int | None
    visit_type: int | None  # None: the site's vitals encounters are in no visit
    provider: int
    encounter_role: int
    creator: int
    concepts: dict[int, int]  # CIEL code -> concept_id, only the vital signs the site records


def _most_common(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return Counter(values).most_common(1)[0][0] if values else None


def learn_vitals(target: SqlTarget) -> VitalsHabit | None:
    """The site's vitals habits, or None when it records none (or lacks the tables)."""
    if any(target.table(name) is None for name in TABLES):
        return None
    concept, encounter, obs = target.table("concept"), target.table("encounter"), target.table("obs")
    visit, enc_provider, provider = target.table("visit"), target.table("encounter_provider"), target.table("provider")
    patient = target.table("patient")
    with target.engine.connect() as conn:
        by_uuid = {row.uuid: row.concept_id for row in conn.execute(
            sa.select(concept.c.concept_id, concept.c.uuid)
            .where(concept.c.uuid.in_([ciel_uuid(code) for code in VITALS]), concept.c.retired == 0))}
        codes = {code: by_uuid[ciel_uuid(code)] for code in VITALS if ciel_uuid(code) in by_uuid}
        if not codes:
            return None
        vitals_obs = sa.select(obs.c.encounter_id).where(obs.c.concept_id.in_(codes.values()), obs.c.voided == 0)
        recent = [dict(row._mapping) for row in conn.execute(
            sa.select(encounter.c.encounter_id, encounter.c.encounter_type, encounter.c.location_id,
                      encounter.c.form_id, encounter.c.creator, visit.c.visit_type_id)
            .outerjoin(visit, visit.c.visit_id == encounter.c.visit_id)
            .where(encounter.c.voided == 0, encounter.c.encounter_id.in_(vitals_obs))
            .order_by(encounter.c.encounter_id.desc()).limit(SAMPLE))]
        if not recent:
            return None
        ids = [row["encounter_id"] for row in recent]
        providers = [(row.provider_id, row.encounter_role_id) for row in conn.execute(
            sa.select(enc_provider.c.provider_id, enc_provider.c.encounter_role_id)
            .join(provider, provider.c.provider_id == enc_provider.c.provider_id)
            .where(enc_provider.c.encounter_id.in_(ids), enc_provider.c.voided == 0, provider.c.retired == 0))]
        if not providers:
            return None  # vitals with no active provider to sign them: nobody to write them as
        recorded = {row[0] for row in conn.execute(
            sa.select(obs.c.concept_id).distinct().where(obs.c.encounter_id.in_(ids), obs.c.voided == 0))}
        newest = sa.select(patient.c.patient_id).where(patient.c.voided == 0) \
            .order_by(patient.c.patient_id.desc()).limit(SAMPLE).subquery()
        total = conn.execute(sa.select(sa.func.count()).select_from(newest)).scalar_one()
        seen = conn.execute(sa.select(sa.func.count(sa.distinct(encounter.c.patient_id))).where(
            encounter.c.patient_id.in_(sa.select(newest.c.patient_id)),
            encounter.c.encounter_id.in_(vitals_obs), encounter.c.voided == 0)).scalar_one()
    provider_id, role = Counter(providers).most_common(1)[0][0]
    visit_types = [row["visit_type_id"] for row in recent]
    return VitalsHabit(
        rate=seen / total if total else 0.0,
        encounter_type=_most_common([row["encounter_type"] for row in recent]),
        location=_most_common([row["location_id"] for row in recent]),
        form=_most_common([row["form_id"] for row in recent]),
        # In a visit when most of the site's vitals are.
        visit_type=_most_common(visit_types) if sum(v is not None for v in visit_types) * 2 > len(recent) else None,
        provider=provider_id, encounter_role=role,
        creator=_most_common([row["creator"] for row in recent]),
        concepts={code: concept_id for code, concept_id in codes.items() if concept_id in recorded},
    )


def vital_value(code: int, identity: Identity, rnd: random.Random, today: date) -> float:
    """A plausible reading for an adult of the canary's sex (children: the adult range, scaled)."""
    _what, (low, high), decimals = VITALS[code]
    age = (today - identity.birth_date).days / 365.25
    if code in (5089, 5090) and identity.sex.value == "F":
        low, high = low * 0.9, high * 0.93
    if code in (5089, 5090) and age < 16:
        share = max(age, 1) / 16
        low, high = low * share, high * share
    return float(round(rnd.uniform(low, high), decimals))


def footprint_rows(target: SqlTarget, habit: VitalsHabit, identity: Identity, stamps: Iterator[datetime],
                   started: datetime, rnd: random.Random) -> list[RowPlan]:
    """The visit, vitals encounter, its provider and obs of one canary, after its registration rows."""

    def plan(table: str, values: dict[str, Any], refs: dict[str, Ref], alias: str = "") -> RowPlan:
        key = KEYS[table]
        present = target.table(table).c
        audit = {"creator": habit.creator, "date_created": next(stamps), "voided": 0, "uuid": str(uuid.uuid4())}
        return RowPlan(table=table, key=(key,), alias=alias,
                       values={name: value for name, value in {**values, **audit}.items() if name in present},
                       generated={key: Generated(AUTOINCREMENT)}, refs=refs)

    person = Ref("person", "person_id")
    rows = []
    encounter_refs = {"patient_id": person}
    if habit.visit_type is not None:
        rows.append(plan("visit", {"visit_type_id": habit.visit_type, "date_started": started,
                                   "location_id": habit.location}, {"patient_id": person}))
        encounter_refs["visit_id"] = Ref("visit", "visit_id")
    rows.append(plan("encounter", {"encounter_type": habit.encounter_type, "location_id": habit.location,
                                   "form_id": habit.form, "encounter_datetime": started}, encounter_refs))
    encounter = Ref("encounter", "encounter_id")
    rows.append(plan("encounter_provider", {"provider_id": habit.provider, "encounter_role_id": habit.encounter_role},
                     {"encounter_id": encounter}))
    today = started.date()
    for code, concept_id in sorted(habit.concepts.items()):
        rows.append(plan("obs", {"concept_id": concept_id, "obs_datetime": started, "location_id": habit.location,
                                 "value_numeric": vital_value(code, identity, rnd, today), "status": "FINAL"},
                         {"person_id": person, "encounter_id": encounter}, alias=f"obs_{code}"))
    return rows
