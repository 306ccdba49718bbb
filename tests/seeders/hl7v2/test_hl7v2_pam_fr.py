"""Every message the hl7v2 seeder sends is strict HL7 v2.5 (hl7apy) and IHE PAM France 2.11.

hl7apy validates the message without its Z segments (it silently drops them,
support/hl7_validation.py says why); the Z segments and the French rules are
checked by support/hl7_validation.pam_fr_problems, which the test receiver
also enforces. Identities come from the real generator.
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from canary.errors import ConfigError, SourceError
from canary.identity.generator import IdentityGenerator
from seeders.hl7v2 import message as h
from seeders.hl7v2 import pam
from support import hl7_validation
from support.mllp_server import MllpServer, PamReceiver
from support.hl7v2_helpers import OPTIONS, make_seeder
from support.plant_helpers import production_config

HEADER = pam.Header("GAM_HEXAGONE", "CHU_RENNES", "DPI", "CHU_RENNES")
AUTHORITY = OPTIONS["pi_authority"]
NOW = datetime(2026, 12, 7, 10, 30, 0)
A29_OUTSIDE_PAM = "MSH-9 event A29 is not in the PAM France ITI-30/ITI-31 lists (2.1, 2.2)"


@pytest.fixture(scope="module")
def identities():
    generator = IdentityGenerator(production_config("sqlite://").contacts, seed=2024, reserve_phones=False)
    pool = list(generator.generate_many(200))
    picked = {}
    for i in pool:  # one of each kind that changes the message
        for kind, test in (("abroad", i.birthplace.abroad), ("married", i.married_name_used),
                           ("two phones", bool(i.phone2)), ("three first names", len(i.first_names) == 3),
                           ("plain", True)):
            if test:
                picked.setdefault(kind, i)
    assert len(picked) == 5
    return list(picked.values())


def messages(identity) -> dict[str, str]:
    """The four messages the seeder can send for one identity."""
    a28 = pam.add_person(HEADER, identity, event="A28", control_id="1", pi="9812345678", pi_authority=AUTHORITY,
                         visit_number="", now=NOW)
    a04 = pam.add_person(HEADER, identity, event="A04", control_id="2", pi="9812345678", pi_authority=AUTHORITY,
                         visit_number="9887654321", account_number="9855554444", now=NOW)
    pid = h.Raw(next(s for s in a04.split(h.SEGMENT_END) if s.startswith("PID|")))
    a11 = pam.cancel_visit(HEADER, pid, control_id="3", visit_number="9887654321", pi_authority=AUTHORITY,
                           registered=NOW, now=NOW)
    a29 = pam.delete_person(HEADER, pid, control_id="4", now=NOW)
    return {"A28": a28, "A04": a04, "A11": a11, "A29": a29}


def test_every_message_is_strict_hl7_v25_and_pam_france(identities):
    for identity in identities:
        for event, text in messages(identity).items():
            assert hl7_validation.hl7apy_problems(text) == [], (event, text)
            expected = [A29_OUTSIDE_PAM] if event == "A29" else []
            assert hl7_validation.pam_fr_problems(text) == expected, (event, text)


def test_the_validators_catch_what_the_seeder_used_to_get_wrong(identities):
    text = messages(identities[0])["A04"]
    segments = text.split(h.SEGMENT_END)

    def without(prefix: str, field: int | None = None) -> str:
        out = []
        for seg in segments:
            if seg.startswith(prefix + "|"):
                if field is None:
                    continue
                parts = seg.split("|")
                parts[field] = ""
                seg = "|".join(parts)
            out.append(seg)
        return h.SEGMENT_END.join(out)

    assert any(p.startswith("no ZFD") for p in hl7_validation.pam_fr_problems(without("ZFD")))
    assert any(p.startswith("ZBE-9") for p in hl7_validation.pam_fr_problems(without("ZBE", 9)))
    assert any(p.startswith("PID-18") for p in hl7_validation.pam_fr_problems(without("PID", 18)))
    assert any(p.startswith("MSH-21") for p in hl7_validation.pam_fr_problems(without("MSH", 20)))  # MSH-21
    old = text.replace("2.5^FRA^2.11", "2.5^FRA^2.10")
    assert any(p.startswith("MSH-12") for p in hl7_validation.pam_fr_problems(old))
    qual = text.replace("|VALI", "|QUAL")
    assert any(p.startswith("PID-32") for p in hl7_validation.pam_fr_problems(qual))
    assert hl7_validation.hl7apy_problems(without("PV1")) != []  # PV1 is required in ADT_A01
    assert hl7_validation.hl7apy_problems(text.replace(identities[0].birth_date.strftime("%Y%m%d"),
                                                       identities[0].birth_date.isoformat())) != []


def test_pid32_is_vali_with_the_ins_as_pam_france_table_0445_says(identities):
    for identity in identities:
        pid = h.parse(messages(identity)["A28"]).first("PID")
        assert pid.repetitions(32) == ["VALI"]  # 6.6.1 / 6.6.15: no QUAL or RECUP in HL7 v2
        assert any(h.part(rep, 4, 2) == "1.2.250.1.213.1.4.8" for rep in pid.repetitions(3))
    with MllpServer() as server:  # a receiver following PAM France refuses QUAL next to the INS
        text = messages(identities[0])["A28"].replace("|VALI", "|QUAL")
        reply = server.receiver.handle(text)
        assert h.parse(reply).first("MSA").get(1) == "AE" and "PID-32" in reply


def test_zfd_says_the_identity_came_from_insi_and_was_checked(identities):
    for identity in identities:
        for event in ("A28", "A04"):
            zfd = h.parse(messages(identity)[event]).first("ZFD")
            assert (zfd.get(4), zfd.get(5), zfd.get(6), zfd.get(7)) == ("N", "INSI", "20261207103000", "CN")
            assert re.fullmatch(r"20\d\d1201", zfd.get(8)) and 2027 <= int(zfd.get(8)[:4]) <= 2035
        assert h.parse(messages(identity)["A11"]).first("ZFD") is None  # not an event of 6.18


def test_a04_sends_the_account_number_and_the_movement_nature(server_a04):
    seeder, placement, received = server_a04
    first = h.parse(received[0])
    pid, zbe = first.first("PID"), first.first("ZBE")
    assert pid.raw(18) == f"{placement.extra['account_number']}^^^{AUTHORITY}^AN"
    assert placement.extra["account_number"] != placement.extra["visit_number"]
    assert (zbe.get(4), zbe.get(9)) == ("INSERT", "HMS")
    cancel = h.parse(received[1])
    assert cancel.first("PID").raw(18) == pid.raw(18)
    assert (cancel.first("ZBE").get(4), cancel.first("ZBE").get(6), cancel.first("ZBE").get(9)) == (
        "CANCEL", "A04", "HMS")


@pytest.fixture
def server_a04(identities):
    with MllpServer() as server:
        seeder = make_seeder(server.url, event="A04")
        placement = seeder.plant(identities[1])
        seeder.retire(placement)
        yield seeder, placement, server.receiver.received


def test_pam_version_210_has_no_conformance_declaration(identities):
    with MllpServer(PamReceiver(pam_version="2.10")) as server:
        make_seeder(server.url, pam_version="2.10").plant(identities[2])
        msh = h.parse(server.receiver.received[-1]).first("MSH")
        assert msh.raw(12) == "2.5^FRA^2.10" and msh.raw(21) == ""
    with pytest.raises(ConfigError, match="pam_version must be one of 2.10, 2.11"):
        make_seeder("mllp://127.0.0.1:1", pam_version="2.9")


def test_a_receiver_without_a29_gets_a_clear_retire_error(identities):
    with MllpServer(PamReceiver(accept_a29=False)) as server:
        seeder = make_seeder(server.url)
        placement = seeder.plant(identities[3])
        with pytest.raises(SourceError) as err:
            seeder.retire(placement)
        text = str(err.value)
        assert "\n" not in text and "the receiver refused A29 message" not in text
        assert "rejected A29 message" in text and "(AR)" in text
        assert f"remove patient PI {placement.extra['pi']} in the receiving system by hand" in text
        assert placement.extra["pi"] in server.receiver.persons  # nothing was deleted
