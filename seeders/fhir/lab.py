"""A laboratory footprint for a FHIR canary: one request, its sample, results and report.

An export of "patients with a result" never holds a patient who has none
(issue #12), so with ``footprint=lab`` each canary gets what a laboratory
information system writes for one common panel, as FHIR R4 resources:

* ``ServiceRequest`` (status completed, intent order, category "laboratory
  procedure", the panel's LOINC code, subject, authoredOn, occurrence);
* ``Specimen`` (serum, collected at the occurrence time, request -> the
  ServiceRequest);
* one ``Observation`` per analyte (status final, category laboratory, LOINC
  code, value in UCUM units, the reference range, specimen and basedOn);
* ``DiagnosticReport`` (status final, category LAB, basedOn, specimen, the
  results).

They are created in that order, each referring to the ones before, and
deleted in the reverse order. Nothing in them reaches a person: no requester,
performer or resultsInterpreter (a report addressed to a real doctor could be
forwarded to them), no copies-to; the values are drawn around the middle of
the reference range so no result is flagged abnormal and no alert fires.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
# Order in which the resources are created (and the reverse, deleted): each refers to earlier ones.
ORDER = ("ServiceRequest", "Specimen", "Observation", "DiagnosticReport")


@dataclass(frozen=True)
class Analyte:
    loinc: str
    display: str
    unit: str  # UCUM code, also shown as the unit
    low: float
    high: float
    decimals: int


@dataclass(frozen=True)
class Panel:
    name: str
    loinc: str
    display: str
    analytes: tuple[Analyte, ...]


PANELS = (
    Panel("ionogramme", "24326-1", "Electrolytes 1998 panel - Serum or Plasma", (
        Analyte("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 136, 145, 0),
        Analyte("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 1),
        Analyte("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 98, 107, 0),
    )),
    Panel("glycemie", "14749-6", "Glucose [Moles/volume] in Serum or Plasma", (
        Analyte("14749-6", "Glucose [Moles/volume] in Serum or Plasma", "mmol/L", 4.1, 5.9, 2),
    )),
    Panel("tsh", "3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", (
        Analyte("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 0.4, 4.0, 2),
    )),
    Panel("crp", "1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", (
        Analyte("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 0.5, 5.0, 1),
    )),
)


def pick_panel(rnd: random.Random) -> Panel:
    return rnd.choice(PANELS)


def _value(analyte: Analyte, rnd: random.Random) -> float:
    """Around the middle of the range, never outside it (no abnormal flag, no alert)."""
    middle, spread = (analyte.low + analyte.high) / 2, (analyte.high - analyte.low) / 6
    value = min(max(rnd.gauss(middle, spread), analyte.low), analyte.high)
    return round(value, analyte.decimals) if analyte.decimals else float(round(value))


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _instant(moment: datetime) -> str:
    return moment.astimezone().isoformat(timespec="seconds")


def service_request(patient: str, panel: Panel, collected: datetime) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "status": "completed", "intent": "order",
            "category": [_concept(SNOMED, "108252007", "Laboratory procedure")],
            "code": _concept(LOINC, panel.loinc, panel.display), "subject": {"reference": patient},
            "occurrenceDateTime": _instant(collected),
            "authoredOn": _instant(collected - timedelta(minutes=20))}


def specimen(patient: str, request: str, collected: datetime) -> dict[str, Any]:
    return {"resourceType": "Specimen", "status": "available",
            "type": _concept(SNOMED, "119364003", "Serum specimen"), "subject": {"reference": patient},
            "request": [{"reference": request}], "collection": {"collectedDateTime": _instant(collected)}}


def observation(patient: str, request: str, sample: str, analyte: Analyte, value: float,
                collected: datetime, issued: datetime) -> dict[str, Any]:
    quantity = {"unit": analyte.unit, "system": UCUM, "code": analyte.unit}
    return {"resourceType": "Observation", "status": "final",
            "category": [_concept(OBSERVATION_CATEGORY, "laboratory", "Laboratory")],
            "code": _concept(LOINC, analyte.loinc, analyte.display), "subject": {"reference": patient},
            "basedOn": [{"reference": request}], "specimen": {"reference": sample},
            "effectiveDateTime": _instant(collected), "issued": _instant(issued),
            "valueQuantity": {"value": value, **quantity},
            "referenceRange": [{"low": {"value": analyte.low, **quantity},
                                "high": {"value": analyte.high, **quantity}}]}


def report(patient: str, request: str, sample: str, panel: Panel, results: list[str],
           collected: datetime, issued: datetime) -> dict[str, Any]:
    return {"resourceType": "DiagnosticReport", "status": "final",
            "category": [_concept(V2_0074, "LAB", "Laboratory")],
            "code": _concept(LOINC, panel.loinc, panel.display), "subject": {"reference": patient},
            "basedOn": [{"reference": request}], "specimen": [{"reference": sample}],
            "effectiveDateTime": _instant(collected), "issued": _instant(issued),
            "result": [{"reference": r} for r in results]}


@dataclass(frozen=True)
class Timing:
    collected: datetime
    issued: datetime

    @classmethod
    def before(cls, now: datetime, rnd: random.Random) -> "Timing":
        """Collected a few hours to two days before planting, validated 2 to 6 hours later."""
        collected = now - timedelta(minutes=rnd.randint(6 * 60, 48 * 60))
        issued = min(collected + timedelta(minutes=rnd.randint(120, 360)), now)
        return cls(collected.replace(microsecond=0), issued.replace(microsecond=0))


def values(panel: Panel, rnd: random.Random) -> list[float]:
    return [_value(a, rnd) for a in panel.analytes]
