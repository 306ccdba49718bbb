"""The OpenELIS seeder's small parts, without a database: clock, contact fields, panels."""

from __future__ import annotations

import random
from datetime import datetime

from seeders.openelis.clock import SaveClock, millis
from seeders.openelis.contact import ContactBuilder
from seeders.common.lab_panels import interval, panel_of
from seeders.sql.neighbours import Neighbours
from support.sql_seeder_helpers import make_identity


def test_save_clock_reads_milliseconds_increasing_a_few_apart():
    clock = SaveClock(datetime(2025, 3, 4, 10, 11, 12, 345678), random.Random(1))
    readings = [clock.reading() for _ in range(20)]
    assert readings[0] == datetime(2025, 3, 4, 10, 11, 12, 345000) == millis(datetime(2025, 3, 4, 10, 11, 12, 345999))
    assert all(r.microsecond % 1000 == 0 for r in readings)
    gaps = [(b - a).total_seconds() * 1000 for a, b in zip(readings, readings[1:])]
    assert all(1 <= gap <= 9 for gap in gaps)


def test_contact_fields_are_blank_unless_the_site_fills_them():
    identity = make_identity(4)
    blank = ContactBuilder(None, None, Neighbours([]), random.Random(2)).values(identity, identity.email)
    assert blank == {"first_name": "", "last_name": "", "primary_phone": "", "email": ""}
    contacts = Neighbours([{"first_name": "Paul", "last_name": "DURAND", "primary_phone": "06 11 22 33 44",
                            "email": "p@example.org"}] * 6 + [{"first_name": "", "last_name": "", "primary_phone": "",
                                                              "email": ""}])
    filled = ContactBuilder(None, None, contacts, random.Random(2)).values(identity, identity.email)
    assert filled["first_name"] == "Paul" and filled["email"] == identity.email
    assert filled["last_name"] == identity.last_name.upper()
    assert filled["primary_phone"].startswith("0") and filled["primary_phone"].count(" ") == 4
    # The e-mail already on the patient's own person is not repeated on the contact.
    assert ContactBuilder(None, None, contacts, random.Random(2)).values(identity, None)["email"] == ""


def test_panels_match_the_site_catalogue_names_and_units():
    assert [panel_of(n) for n in ("Hémoglobine", "GB", "Glycémie", "Cholestérol HDL", "TSH us", "Test rapide HIV")] == [
        "NFS", "NFS", "glycemie", "bilan lipidique", "TSH", None]
    assert interval("Glucose", "g/l").high == 1.06 and interval("Glucose", "mmol/l").low == 4.1
    assert interval("Glucose", "mg/dl") is None  # an unknown unit: no invented value
    assert interval("Plaquette", "mille/mm3").decimals == 0 and interval("PLQ", "10^3/µl") is not None


def test_a_sample_is_received_as_long_before_its_order_as_the_sites_samples_are():
    """The reception lead comes with the rest of one site sample's delays, not from a fixed 1-15 minutes;
    every delay and the registration's time of day stay within the site's range."""
    from datetime import time, timedelta

    from seeders.openelis.footprint import Footprint
    from seeders.openelis.labsite import LabSite

    def site(pace, received):
        return LabSite(statuses={}, tests={}, ordered={}, results={}, samples=[{"received_date": received}],
                       items=[], analyses=[], result_rows=[], users={}, pace=pace, accession_numbers=[],
                       updates={}, registration_times=[time(9, 0), time(10, 0), time(11, 0)], weekends=True)

    minutes = timedelta(minutes=1)
    # Samples received 30 to 50 minutes before their order's entry, ordered 10 to 20 minutes after registering.
    pace = [(o * minutes, 3 * 60 * minutes, 60 * minutes, lead * minutes) for o, lead in ((10, 30), (15, 40), (20, 50))]
    footprint = Footprint(None, site(pace, datetime(2025, 3, 3, 9, 12)), 1, random.Random(5))
    for _ in range(200):
        episode = footprint.episode(datetime(2025, 3, 5, 17, 0))
        received = footprint._received(episode)
        assert received.second == 0 and received.microsecond == 0  # typed to the minute, as the site's
        assert 29 * minutes <= episode.ordered - received <= 51 * minutes  # (to the nearest minute)
        assert 10 * minutes <= episode.ordered - episode.registered <= 20 * minutes
        assert time(9, 0) <= episode.registered.time() <= time(11, 0)
    # A site whose samples tell nothing (no reception date): 1 to 15 minutes before the order.
    footprint = Footprint(None, site([p[:3] for p in pace], datetime(2025, 3, 3, 9, 12, 7)), 1, random.Random(5))
    episode = footprint.episode(datetime(2025, 3, 5, 17, 0))
    assert minutes <= episode.ordered - footprint._received(episode) <= 16 * minutes


def test_a_value_between_its_neighbours_keeps_the_sites_range_and_copies_none():
    from datetime import timedelta

    from seeders.openelis.footprint import between_neighbours

    rnd = random.Random(3)
    values = [1.0, 2.0, 4.0, 8.0]
    drawn = [between_neighbours(rnd.choice(values), values, rnd) for _ in range(2000)]
    assert min(drawn) >= 1.0 and max(drawn) <= 8.0 and not set(drawn) & set(values)
    assert between_neighbours(timedelta(minutes=4), [timedelta(minutes=m) for m in values], rnd) <= timedelta(minutes=8)
    assert between_neighbours(5.0, [5.0], rnd) == 5.0


def test_two_panels_as_often_as_the_sites_requests_have_them():
    from collections import Counter

    from seeders.common.lab_panels import panel_of
    from seeders.openelis.footprint import Footprint
    from seeders.openelis.labsite import LabSite, Test

    names = {1: "Hémoglobine", 2: "Glycémie", 3: "Cholestérol HDL"}
    tests = {i: Test(i, name, None, {}, None, {"id": i}) for i, name in names.items()}
    # 40 requests: 20 of one panel, 20 of two (each panel as often as the others).
    items = [{"id": n, "samp_id": n} for n in range(40)]
    combos = [(1,), (2,), (3,), (1, 2), (1, 3), (2, 3)]
    analyses = [{"id": 100 * n + t, "sampitem_id": n, "test_id": t}
                for n in range(40) for t in (combos[n % 3] if n < 20 else combos[3 + n % 3])]
    site = LabSite(statuses={}, tests=tests, ordered=Counter(a["test_id"] for a in analyses),
                   results={i: ["1.0"] * 5 for i in tests}, samples=[], items=items, analyses=analyses,
                   result_rows=[], users={}, pace=[], accession_numbers=[], updates={})
    footprint = Footprint(None, site, 1, random.Random(4))
    draws = [frozenset(panel_of(t.name) for t in footprint.choose_tests()) for _ in range(3000)]
    assert abs(sum(len(d) == 2 for d in draws) / 3000 - 0.5) < 0.04
    assert all(abs(sum(name in d for d in draws) / 3000 - 0.5) < 0.04 for name in {panel_of(n) for n in names.values()})


def test_a_canary_comes_back_as_a_poisson_patient_of_the_site_would():
    """Asked at each drip event about the days since the previous one, returns add up to the site's rate."""
    import math
    from datetime import timedelta

    from seeders.openelis.footprint import Footprint
    from seeders.openelis.labsite import LabSite

    site = LabSite(statuses={}, tests={}, ordered={}, results={}, samples=[], items=[], analyses=[],
                   result_rows=[], users={}, pace=[], accession_numbers=[], updates={}, return_rates=[0.01])
    footprint = Footprint(None, site, 1, random.Random(6))
    start = datetime(2025, 1, 6)
    # Over 100 days at one request per 100 days: a return with chance 1 - e^-1, not certainly.
    back = sum(footprint.comes_back(7, start, start + timedelta(days=100)) for _ in range(4000)) / 4000
    assert abs(back - 0.632) < 0.03
    # Asked every 20 days over 300 days: about 3 returns, as the site's patient has (at most one per event:
    # 15 x (1 - e^-0.2) = 2.7); asked each time about the days since the first, it came back nearly every time.
    returns = [sum(footprint.comes_back(7, start + timedelta(days=d), start + timedelta(days=d + 20))
                   for d in range(0, 300, 20)) for _ in range(1000)]
    assert abs(sum(returns) / 1000 - 15 * (1 - math.exp(-0.2))) < 0.15
