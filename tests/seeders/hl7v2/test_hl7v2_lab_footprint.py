"""footprint=lab: after the ADT, the canary's results as an ORU^R01 (HL7 v2.5.1), withdrawn at retire.

The test receiver validates every ORU with hl7apy strict, stores final
results, deletes them on OBX-11 D, and refuses to delete a patient who still
has results, so the order of retirement is checked too.
"""

from __future__ import annotations

import pytest

from canary.errors import ConfigError, SourceError
from canary.identity.generator import IdentityGenerator
from seeders.common import lab_panels
from seeders.hl7v2 import message as h
from support import hl7_validation
from support.hl7v2_helpers import OPTIONS, make_seeder
from support.mllp_server import MllpServer, PamReceiver
from support.plant_helpers import production_config

LAB = {"footprint": "lab", "lab_application": "SIL_BIOLOGIE"}


@pytest.fixture(scope="module")
def identities():
    generator = IdentityGenerator(production_config("sqlite://").contacts, seed=77, reserve_phones=False)
    return list(generator.generate_many(10))


@pytest.mark.parametrize("event", ["A28", "A04"])
def test_results_follow_the_adt_and_are_withdrawn_before_the_patient_is_deleted(event, identities):
    with MllpServer() as server:
        receiver = server.receiver
        seeder = make_seeder(server.url, event=event, **LAB)
        placements = [seeder.plant(identity) for identity in identities[:6]]
        assert len(receiver.results) == 6 and len(receiver.persons) == 6
        for placement in placements:
            order = placement.extra["lab"]
            pi, observations = receiver.results[order["filler"]]
            assert pi == placement.extra["pi"]
            panel = lab_panels.panel_named(order["panel"])
            assert [code for code, _ in observations] == [a.loinc for a in panel.analytes]
            for analyte, (_, value) in zip(panel.analytes, observations):
                assert analyte.low <= float(value) <= analyte.high  # never flagged, no alert
        results = [m for m in receiver.received if h.parse(m).first("MSH").get(9, 1) == "ORU"]
        for text in results:
            assert hl7_validation.problems(text) == []
            msh, obr = h.parse(text).first("MSH"), h.parse(text).first("OBR")
            assert (msh.get(3), msh.raw(12), obr.get(25)) == ("SIL_BIOLOGIE", "2.5.1", "F")
            assert (h.parse(text).first("PV1") is not None) == (event == "A04")
        sent = len(receiver.received)
        for placement in placements:
            seeder.retire(placement)
        assert receiver.results == {} and receiver.persons == {} and receiver.visits == {}
        withdrawn = [h.parse(m) for m in receiver.received[sent:]]
        kinds = [m.first("MSH").get(9, 2) for m in withdrawn]
        assert kinds[: 3 if event == "A04" else 2] == (["R01", "A11", "A29"] if event == "A04" else ["R01", "A29"])
        deletion = withdrawn[0]
        assert {obx.get(11) for obx in deletion.all("OBX")} == {"D"} and deletion.first("OBR").get(25) == "C"
        assert hl7_validation.problems(receiver.received[sent]) == []


def test_results_refused_leave_no_patient_behind(identities):
    with MllpServer(PamReceiver(accept_results=False)) as server:
        seeder = make_seeder(server.url, event="A04", **LAB)
        with pytest.raises(SourceError) as err:
            seeder.plant(identities[7])
        text = str(err.value)
        assert "\n" not in text and "the receiver rejected R01 message" in text
        assert text.endswith("; the patient was deleted again")
        assert server.receiver.persons == {} and server.receiver.visits == {}


def test_plan_shows_the_results_message_without_sending(identities):
    with MllpServer() as server:
        rows = make_seeder(server.url, **LAB).plan(identities[8])
        assert server.receiver.received == []
    tables = [r.table for r in rows]
    assert tables[:5] == ["MSH", "EVN", "PID", "PV1", "ZFD"] and tables[5:8] == ["MSH", "PID", "ORC"]
    assert rows[5].values["MSH-9"] == "ORU^R01^ORU_R01" and tables[-1] == "SPM"


def test_footprint_options_are_checked():
    with pytest.raises(ConfigError, match="footprint=lab needs --set lab_application"):
        make_seeder("mllp://127.0.0.1:1", footprint="lab")
    with pytest.raises(ConfigError, match="footprint must be none or lab"):
        make_seeder("mllp://127.0.0.1:1", footprint="orders")
    assert "footprint" not in OPTIONS  # the other tests plant without a footprint
