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

from datetime import datetime, timedelta
from typing import Any

from seeders.common.lab_panels import Analyte, Panel

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
# Order in which the resources are created (and the reverse, deleted): each refers to earlier ones.
ORDER = ("ServiceRequest", "Specimen", "Observation", "DiagnosticReport")


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
