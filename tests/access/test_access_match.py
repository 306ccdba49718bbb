"""Audit events matched to canaries by what their rows hold, and read as single or bulk access."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from canary.access.event import AccessEvent, Action, PatientRef
from canary.access.match import AccessIndex, BurstPolicy, Severity, identifiers_of
from canary.model import Placement

T0 = datetime(2024, 3, 5, 14, 0, tzinfo=timezone.utc)
NIR = "284057511512345"
UUID = "9b2f6c1e-3a4d-4c5e-8f7a-1b2c3d4e5f60"


def openemr_like() -> Placement:
    return Placement(rows=(
        {"table": "patient_data", "key": {"id": 4411},
         "values": {"pid": 4411, "pubpid": "4411", "uuid": UUID.replace("-", ""), "fname": "Jeanne", "DOB": "1984-05-07"}},
        {"table": "insurance_data", "key": {"id": 9}, "values": {"pid": 4411, "type": "primary"}},
    ), extra={})


def event(*refs: PatientRef, source="DPI-PROD", action=Action.READ, user="jmartin") -> AccessEvent:
    return AccessEvent(action=action, at=T0, user=user, user_name=None, workstation=None, address="10.0.0.5",
                       audit_source=source, event_code=None, outcome="0", patients=refs, format="dicom")


@pytest.fixture
def index():
    idx = AccessIndex(sources={"DPI-PROD": "dpi-brest"})
    idx.add(1, "dpi-brest", identifiers_of(openemr_like(), NIR))
    idx.add(2, "lis-rennes", identifiers_of(Placement(rows=({"table": "patient", "key": {"id": 77},
                                                              "values": {"fhir_uuid": "abc-77"}},)), None))
    return idx


def test_the_identifiers_of_a_placement_are_its_keys_numbers_uuid_and_nir():
    ids = identifiers_of(openemr_like(), NIR)
    assert {"4411", UUID.replace("-", ""), NIR, NIR[:13]} <= ids
    assert "jeanne" not in ids and "1984-05-07" not in ids and "9" not in ids  # not identifiers


def test_a_nir_or_a_uuid_names_the_canary_whatever_the_source(index):
    by_ins = event(PatientRef(NIR, "1.2.250.1.213.1.4.8"), source="UNKNOWN-APP")
    by_uuid = event(PatientRef(UUID.upper()), source=None)
    assert [m.canary_id for m in index.match(by_ins)] == [1]
    assert [m.canary_id for m in index.match(by_uuid)] == [1]


def test_a_patient_number_counts_only_from_the_canary_s_own_database(index):
    assert [m.canary_id for m in index.match(event(PatientRef("4411", "1.2.250.1.999.1")))] == [1]
    assert index.match(event(PatientRef("4411"), source="OTHER-HOSPITAL-LIS")) == []
    assert index.match(event(PatientRef("4411"), source=None)) == []


def test_a_number_under_the_ins_authority_must_be_a_nir(index):
    assert index.match(event(PatientRef("4411", "1.2.250.1.213.1.4.8"))) == []


def test_ordinary_patients_match_nothing_and_a_canary_is_named_once(index):
    assert index.match(event(PatientRef("4412"), PatientRef("284057511512399"))) == []
    both = event(PatientRef("4411"), PatientRef(NIR), PatientRef(UUID))
    assert [m.canary_id for m in index.match(both)] == [1]


def test_one_read_is_unjustified_three_canaries_within_the_hour_are_bulk():
    policy = BurstPolicy(burst_canaries=3, burst_window=timedelta(hours=1))
    assert policy.severity("dpi", "jmartin", 1, Action.READ, T0) is Severity.UNJUSTIFIED
    assert policy.severity("dpi", "jmartin", 1, Action.READ, T0 + timedelta(minutes=5)) is Severity.UNJUSTIFIED
    assert policy.severity("dpi", "other", 2, Action.READ, T0 + timedelta(minutes=6)) is Severity.UNJUSTIFIED
    assert policy.severity("dpi", "jmartin", 2, Action.READ, T0 + timedelta(minutes=7)) is Severity.UNJUSTIFIED
    assert policy.severity("dpi", "jmartin", 3, Action.READ, T0 + timedelta(minutes=8)) is Severity.BULK


def test_reads_spread_over_more_than_the_window_stay_unjustified_and_an_export_is_bulk_at_once():
    policy = BurstPolicy(burst_canaries=3, burst_window=timedelta(hours=1))
    for n, canary in enumerate((1, 2, 3)):
        assert policy.severity("dpi", "jmartin", canary, Action.READ, T0 + n * timedelta(hours=2)) \
            is Severity.UNJUSTIFIED
    assert policy.severity("dpi", "jmartin", 4, Action.EXPORT, T0 + timedelta(hours=9)) is Severity.BULK


def test_a_fhir_reference_is_scoped_like_a_number_unless_it_is_a_uuid(index):
    assert index.match(event(PatientRef("4411", reference=True), source="SOME-FHIR-SERVER")) == []
    assert [m.canary_id for m in index.match(event(PatientRef(UUID, reference=True), source=None))] == [1]
