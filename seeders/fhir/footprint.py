"""Create, check and delete a canary's laboratory footprint on a FHIR server (seeders/fhir/lab.py).

Each resource is created with a plain ``POST`` (one attempt: without a
condition a retry could make a second one), then read back like the Patient.
A failure deletes what was created so far, newest first, so a half footprint
never stays. The placement keeps ``{"resource", "id", "sent"}`` per resource
in creation order.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from canary.errors import MappingError, SourceError
from seeders.common import lab_panels
from seeders.fhir import lab
from seeders.fhir.http import FhirClient

# Elements verify compares: what the seeder wrote, except meta and id.
_IGNORED = ("resourceType", "id", "meta")


def plant(client: FhirClient, patient_id: str, rnd: random.Random, now: datetime) -> list[dict[str, Any]]:
    """The footprint of Patient/``patient_id``; on failure nothing of it is left."""
    made: list[dict[str, Any]] = []
    try:
        _build(client, f"Patient/{patient_id}", rnd, now, made)
    except (SourceError, MappingError) as err:
        try:
            delete(client, made)
        except SourceError:
            left = ", ".join(f"{m['resource']}/{m['id']}" for m in made)
            raise SourceError(f"{err} (and the laboratory footprint made so far could not be deleted: "
                              f"{left})") from None
        raise
    return made


def _build(client: FhirClient, patient: str, rnd: random.Random, now: datetime, made: list[dict[str, Any]]) -> None:
    _resources(patient, rnd, now, lambda resource: _create(client, resource, made))


def preview(rnd: random.Random, now: datetime) -> list[dict[str, Any]]:
    """The footprint as it would be sent, references to resources not yet created left symbolic."""
    shown: list[dict[str, Any]] = []

    def keep(resource: dict[str, Any]) -> str:
        shown.append(resource)
        return f"{resource['resourceType']}/(new {len(shown)})"

    _resources("Patient/(new)", rnd, now, keep)
    return shown


def _resources(patient: str, rnd: random.Random, now: datetime, create) -> None:
    """Build each resource in reference order; ``create`` sends one and returns its reference."""
    panel = lab_panels.pick_panel(rnd)
    timing = lab_panels.Timing.before(now, rnd)
    request = create(lab.service_request(patient, panel, timing.collected))
    sample = create(lab.specimen(patient, request, timing.collected))
    results = [create(lab.observation(patient, request, sample, analyte, value, timing.collected, timing.issued))
               for analyte, value in zip(panel.analytes, lab_panels.values(panel, rnd))]
    create(lab.report(patient, request, sample, panel, results, timing.collected, timing.issued))


def _create(client: FhirClient, resource: dict[str, Any], made: list[dict[str, Any]]) -> str:
    kind = resource["resourceType"]
    created = client.create(resource, None, attempts=1)
    if created.id is None:
        raise SourceError(f"source '{client.source_name}': {client.shown_base} created a {kind} without "
                          "saying its id")
    made.append({"resource": kind, "id": created.id, "sent": resource})
    stored = client.read(kind, created.id)
    changed = changed_elements(resource, stored)
    if changed:
        raise MappingError(f"source '{client.source_name}': {client.shown_base} did not keep {changed[0]} as sent")
    return f"{kind}/{created.id}"


def changed_elements(sent: dict[str, Any], current: dict[str, Any] | None) -> list[str]:
    kind = sent.get("resourceType", "?")
    if current is None:
        return [kind]
    return [f"{kind}.{name}" for name in sent if name not in _IGNORED and sent[name] != current.get(name)]


def check(client: FhirClient, footprint: list[dict[str, Any]]) -> list[str]:
    """One line per footprint resource that is gone or no longer as sent."""
    details = []
    for item in footprint:
        current = client.read(item["resource"], item["id"])
        if current is None:
            details.append(f"{item['resource']}/{item['id']} is gone")
        else:
            details += [f"{name} changed ({item['resource']}/{item['id']})"
                        for name in changed_elements(item["sent"], current)]
    return details


def delete(client: FhirClient, footprint: list[dict[str, Any]]) -> None:
    """Newest first: a report before its results, a request last (servers refuse dangling references)."""
    for item in reversed(footprint):
        client.delete(item["resource"], item["id"])
