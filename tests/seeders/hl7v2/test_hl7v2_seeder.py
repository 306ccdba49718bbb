"""The hl7v2 seeder against a strict test MLLP receiver (tests/mllp_server.py).

Identities come from the real generator (valid NIR keys, INSEE birthplaces).
"""

from __future__ import annotations

import dataclasses

import pytest

from canary.planting import catalog
from canary.errors import ConfigError, SourceError
from canary.identity.generator import IdentityGenerator
from canary.model import INS_NIR_OID, Placement, VerifyState
from support.hl7v2_helpers import OPTIONS, make_seeder
from support.mllp_server import MllpServer, PamReceiver, Person
from support.plant_helpers import add_source, new_registry, production_config
from seeders.hl7v2 import message as h
from seeders.hl7v2.seeder import Hl7v2Seeder
from seeders.common.transforms import strip_accents

@pytest.fixture(scope="module")
def identities():
    config = production_config("sqlite://")
    generator = IdentityGenerator(config.contacts, seed=2024, reserve_phones=True)
    return list(generator.generate_many(60))


@pytest.fixture
def server():
    with MllpServer() as running:
        yield running


def test_escaping_round_trips_every_delimiter():
    nasty = "A|B^C~D\\E&F\rG\nH"
    assert h.unescape(h.escape(nasty)) == nasty
    assert h.escape("O|B^R~I\\E&N") == "O\\F\\B\\S\\R\\R\\I\\E\\E\\T\\N"
    text = h.message(h.segment("MSH", {3: "APP", 9: ["ADT", "A28"], 10: "1"}),
                     h.segment("PID", {5: [nasty, "Zoé"], 11: [("a&b", "c")]}))
    pid = h.parse(text).first("PID")
    assert pid.get(5, 1) == nasty and pid.get(5, 2) == "Zoé"
    assert pid.get(11, 1, 1) == "a&b" and pid.get(11, 1, 2) == "c"


def test_the_message_follows_pam_france(server, identities):
    identity = next(i for i in identities if i.phone2)
    seeder = make_seeder(server.url)
    placement = seeder.plant(identity)
    message = h.parse(server.receiver.received[-1])
    msh, pid = message.first("MSH"), message.first("PID")
    assert msh.raw(9) == "ADT^A28^ADT_A05"
    assert msh.raw(12) == "2.5^FRA^2.11" and msh.raw(21) == "2.11^IHE_FRANCE-2.11-PAM"
    assert msh.get(18) == "UNICODE UTF-8"
    assert msh.get(3) == "GAM_HEXAGONE" and msh.get(10) == placement.extra["message_control_id"]
    ids = pid.repetitions(3)
    assert ids[0] == f"{placement.extra['pi']}^^^CHU_RENNES&1.2.250.1.211.10.200.2&ISO^PI"
    assert ids[1] == f"{identity.nir}^^^ASIP-SANTE-INS-NIR&{INS_NIR_OID}&ISO^INS"
    assert placement.extra["pi"].startswith("98") and len(placement.extra["pi"]) == 10
    *used, birth = pid.repetitions(5)
    assert [h.part(u, 7) for u in used] == (["D"] if identity.married_name_used else [])
    assert h.part(birth, 7) == "L"
    assert h.part(birth, 1) == strip_accents(identity.birth_name).upper()
    assert h.part(birth, 3).split(" ")[0] == h.part(birth, 2)
    assert pid.get(7) == identity.birth_date.strftime("%Y%m%d")
    assert pid.get(8) == identity.sex.value
    home, bdl = pid.repetitions(11)
    assert h.part(home, 5) == identity.address.postcode and h.part(home, 7) == "H"
    assert h.part(bdl, 7) == "BDL" and h.part(bdl, 9) == identity.birthplace.insee_code
    telecoms = pid.repetitions(13)
    assert h.part(telecoms[0], 12) == "0" + identity.phone[3:]
    assert h.part(telecoms[0], 3) == ("CP" if identity.phone[3] in "67" else "PH")
    assert h.part(telecoms[1], 12) == "0" + identity.phone2[3:]
    assert telecoms[-1] == f"^NET^Internet^{identity.email}"
    assert pid.get(32) == "VALI"
    assert message.first("PV1").raw(2) == "N"


def test_values_with_hl7_delimiters_arrive_intact(server, identities):
    address = dataclasses.replace(identities[0].address, line1="12 rue A|B ^C & D~E\\F")
    identity = dataclasses.replace(identities[0], address=address)
    placement = make_seeder(server.url).plant(identity)
    assert server.receiver.persons[placement.extra["pi"]].address == "12 rue A|B ^C & D~E\\F"


def test_fifty_plants_then_retire_forgets_exactly_those(server, identities):
    receiver = server.receiver
    real = {f"12345{n:05d}": Person(f"12345{n:05d}", "", "REEL", "REEL", "JEAN", "19700101", "M", "",
                                     [], "", "VALI") for n in range(3)}
    receiver.persons.update(real)
    seeder = make_seeder(server.url)
    placements = [seeder.plant(identity) for identity in identities[:50]]
    assert {p.extra["ack"] for p in placements} == {"AA"}
    assert len({p.extra["pi"] for p in placements}) == 50
    assert len(receiver.persons) == 53
    stored = receiver.persons[placements[7].extra["pi"]]
    assert stored.ins == identities[7].nir and stored.email == identities[7].email
    for placement in placements:
        seeder.retire(placement)
    assert set(receiver.persons) == set(real)
    deletes = [h.parse(m).first("MSH").raw(9) for m in receiver.received[-50:]]
    assert deletes == ["ADT^A29^ADT_A21"] * 50


def test_a04_registers_a_visit_and_retire_cancels_it_first(server, identities):
    seeder = make_seeder(server.url, event="A04")
    placement = seeder.plant(identities[1])
    first = h.parse(server.receiver.received[-1])
    assert first.first("MSH").raw(9) == "ADT^A04^ADT_A01"
    assert first.first("PV1").get(2) == "O" and first.first("ZBE").get(4) == "INSERT"
    assert server.receiver.visits == {placement.extra["visit_number"]: placement.extra["pi"]}
    seeder.retire(placement)
    kinds = [h.parse(m).first("MSH").get(9, 2) for m in server.receiver.received[-2:]]
    assert kinds == ["A11", "A29"]
    assert server.receiver.persons == {} and server.receiver.visits == {}


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and "\r" not in text
    return text


def test_a_validation_error_is_one_clear_line(server, identities):
    bad = dataclasses.replace(identities[2], nir=identities[2].nir[:13] + "00")
    with pytest.raises(SourceError) as err:
        make_seeder(server.url).plant(bad)
    text = _one_line(err)
    assert text.startswith("source 'dpi-rennes': the receiver refused A28 message ")
    assert "(AE): PID-3: INS-NIR" in text and "wrong key" in text
    assert server.receiver.persons == {}


@pytest.mark.parametrize("mode,verdict", [("AR", "rejected"), ("AE", "refused")])
def test_ar_and_ae_answers_become_errors(identities, mode, verdict):
    with MllpServer(PamReceiver(mode=mode)) as server:
        with pytest.raises(SourceError) as err:
            make_seeder(server.url).plant(identities[3])
    text = _one_line(err)
    assert f"the receiver {verdict} A28 message" in text and f"({mode}):" in text


def test_no_acknowledgement_is_a_timeout_error_naming_the_pi(identities):
    with MllpServer(PamReceiver(mode="silent")) as server:
        seeder = make_seeder(server.url, timeout="0.3")
        with pytest.raises(SourceError) as err:
            seeder.plant(identities[4])
    text = _one_line(err)
    assert "no acknowledgement from 127.0.0.1:" in text and "within 0.3 s" in text
    assert "check PI 98" in text


def test_an_unreachable_receiver_fails_at_open():
    server = MllpServer().start()
    url = server.url
    server.stop()
    with pytest.raises(SourceError, match=r"^source 'dpi-rennes': cannot connect to 127\.0\.0\.1:\d+"):
        make_seeder(url)


def test_retiring_an_unknown_patient_is_a_clear_error(server, identities):
    seeder = make_seeder(server.url)
    placement = seeder.plant(identities[5])
    seeder.retire(placement)
    with pytest.raises(SourceError) as err:
        seeder.retire(placement)
    assert "refused A29 message" in _one_line(err) and "unknown patient" in str(err.value)


def test_verify_is_honest_about_what_it_can_know(server, identities):
    seeder = make_seeder(server.url)
    placement = seeder.plant(identities[6])
    result = seeder.verify(identities[6], placement)
    assert result.state is VerifyState.OK
    assert result.details[0].startswith("not verifiable over HL7 v2: accepted at plant time (AA to A28")
    assert seeder.verify(identities[6], Placement()).state is VerifyState.MISSING
    assert seeder.collides(identities[6]) is False
    assert seeder.locate(identities[6]) is None


def test_plan_shows_the_segments_without_sending(server, identities):
    rows = make_seeder(server.url).plan(identities[8])
    assert [r.table for r in rows] == ["MSH", "EVN", "PID", "PV1", "ZFD"]
    assert rows[2].values["PID-32"] == "VALI"
    assert server.receiver.received == []


@pytest.mark.parametrize("changes,message", [
    ({"sending_application": ""}, "needs --set sending_application"),
    ({"event": "A01"}, "event must be A28 or A04"),
    ({"pi_authority": "CHU_RENNES"}, "pi_authority must look like NAME&1.2.250.1.xxx&ISO"),
    ({"port": "http"}, "port must be a whole number"),
    ({"pi_prefix": "9x"}, "pi_prefix must be digits"),
    ({"colour": "blue"}, "has no option 'colour'"),
])
def test_bad_options_are_refused_at_source_add(changes, message):
    with pytest.raises(ConfigError, match=message):
        Hl7v2Seeder.validate_options({**OPTIONS, **changes})


def test_host_and_port_options_win_over_the_url(server, identities):
    seeder = make_seeder("mllp://nowhere.invalid:1", host="127.0.0.1", port=str(server.port))
    seeder.plant(identities[9])
    assert len(server.receiver.persons) == 1


def test_plant_verify_retire_through_the_registry(tmp_path, server, monkeypatch):
    from canary.planting import planter as planting
    from canary.planting import upkeep
    from canary.model import CanaryStatus

    monkeypatch.setitem(catalog.BUILTIN_SEEDERS, "hl7v2", "seeders.hl7v2.seeder:Hl7v2Seeder")
    registry, config = new_registry(tmp_path)
    with registry:
        add_source(registry, "dpi-rennes", "hl7v2", url=server.url,
                   options=Hl7v2Seeder.validate_options(OPTIONS))
        result = planting.plant(registry, config, "dpi-rennes", 3)
        assert len(server.receiver.persons) == 3
        report = upkeep.verify(registry, "dpi-rennes")
        assert {f.state for f in report.findings} == {"ok"} and not report.problems
        upkeep.retire(registry, registry.list_canaries(source="dpi-rennes"))
        assert server.receiver.persons == {}
        statuses = {registry.get_canary(i).status for i in result.canary_ids}
        assert statuses == {CanaryStatus.RETIRED}
