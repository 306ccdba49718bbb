"""footprint=lab: each canary gets a ServiceRequest, Specimen, Observations and a DiagnosticReport.

The test server validates every one with fhir.resources (R4), refuses a
reference that does not resolve and a delete that would leave one dangling
(409), so the order of creation and deletion is checked too.
"""

from __future__ import annotations

import copy
import json

import pytest

from canary.errors import ConfigError, MappingError
from canary.model import Placement, VerifyState
from seeders.common import lab_panels
from seeders.fhir.seeder import FhirSeeder
from support.fhir_hosts import identity, real_patient, spec
from support.fhir_server import FhirTestServer, ServerSettings
from support.fhir_validation import r4, r4_plus


@pytest.fixture
def server():
    srv = FhirTestServer(ServerSettings()).start()
    for n in range(12):
        srv.store.add(real_patient(n))
    yield srv
    srv.stop()


def plant(server, idents):
    with FhirSeeder(spec(footprint="lab"), server.base_url) as seeder:
        return [seeder.plant(i) for i in idents]


def test_each_canary_gets_a_valid_lab_footprint_referring_to_it(server):
    placements = plant(server, [identity(i) for i in range(8)])
    for placement in placements:
        footprint = placement.extra["footprint"]
        kinds = [item["resource"] for item in footprint]
        assert kinds[0] == "ServiceRequest" and kinds[1] == "Specimen" and kinds[-1] == "DiagnosticReport"
        assert set(kinds[2:-1]) == {"Observation"}
        patient = f"Patient/{placement.extra['id']}"
        for item in footprint:
            stored = server.store.lab[f"{item['resource']}/{item['id']}"]
            assert r4(stored) == [] and r4_plus(stored) == []
            assert stored["subject"] == {"reference": patient}
            assert not {"requester", "performer", "resultsInterpreter"} & set(stored)  # reaches nobody
        report = server.store.lab[f"DiagnosticReport/{footprint[-1]['id']}"]
        assert [r["reference"] for r in report["result"]] == [f"Observation/{i['id']}" for i in footprint[2:-1]]
        for item in footprint[2:-1]:
            obs = server.store.lab[f"Observation/{item['id']}"]
            value, rng = obs["valueQuantity"]["value"], obs["referenceRange"][0]
            assert rng["low"]["value"] <= value <= rng["high"]["value"]  # no abnormal flag, no alert
            assert obs["valueQuantity"]["system"] == "http://unitsofmeasure.org"
    panels = {server.store.lab[f"ServiceRequest/{p.extra['footprint'][0]['id']}"]["code"]["coding"][0]["code"]
              for p in placements}
    assert len(panels) > 1 and panels <= {p.loinc for p in lab_panels.PANELS}


def test_verify_sees_a_deleted_or_altered_result_and_retire_removes_everything(server):
    before_patients, before_lab = copy.deepcopy(server.store.patients), copy.deepcopy(server.store.lab)
    idents = [identity(i) for i in (20, 21, 22)]
    placements = [Placement.from_dict(json.loads(json.dumps(p.to_dict()))) for p in plant(server, idents)]
    gone, altered = placements[0].extra["footprint"][-1], placements[1].extra["footprint"][2]
    del server.store.lab[f"DiagnosticReport/{gone['id']}"]
    server.store.lab[f"Observation/{altered['id']}"]["valueQuantity"]["value"] = 999
    with FhirSeeder(spec(footprint="lab"), server.base_url) as seeder:
        first, second, third = (seeder.verify(i, p) for i, p in zip(idents, placements))
        assert first.state is VerifyState.ALTERED and first.details == (f"DiagnosticReport/{gone['id']} is gone",)
        assert second.details == (f"Observation.valueQuantity changed (Observation/{altered['id']})",)
        assert third.state is VerifyState.OK
        for placement in placements:
            seeder.retire(placement)  # the server refuses (409) a delete in the wrong order
    assert server.store.patients == before_patients and server.store.lab == before_lab


def test_a_refused_footprint_leaves_nothing_behind(server):
    server.settings.refuse_lab = "DiagnosticReport"
    before_patients = copy.deepcopy(server.store.patients)
    with FhirSeeder(spec(footprint="lab"), server.base_url) as seeder:
        with pytest.raises(MappingError) as err:
            seeder.plant(identity(30))
    text = str(err.value)
    assert "rejected the DiagnosticReport (HTTP 422): DiagnosticReport refused" in text
    assert text.endswith("; the Patient was deleted again") and "\n" not in text
    assert server.store.lab == {} and server.store.patients == before_patients


def test_plan_shows_the_footprint_without_sending_it(server):
    with FhirSeeder(spec(footprint="lab"), server.base_url) as seeder:
        rows = seeder.plan(identity(41))
    tables = [r.table for r in rows]
    assert tables[:3] == ["Patient", "ServiceRequest", "Specimen"] and tables[-1] == "DiagnosticReport"
    assert rows[2].values["request"] == [{"reference": "ServiceRequest/(new 1)"}]
    assert server.store.lab == {} and len(server.store.patients) == 12


def test_without_footprint_nothing_but_the_patient_is_written(server):
    with FhirSeeder(spec(), server.base_url) as seeder:
        placement = seeder.plant(identity(40))
    assert "footprint" not in placement.extra and server.store.lab == {}
    with pytest.raises(ConfigError, match="footprint='all' is not valid"):
        FhirSeeder.validate_options({"footprint": "all"})
