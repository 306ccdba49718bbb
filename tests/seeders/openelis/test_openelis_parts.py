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
