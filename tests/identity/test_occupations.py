"""Occupations and address complements the seeders write where a site fills those fields with free text."""

from __future__ import annotations

import random
from collections import Counter

from canary.identity.occupations import occupation
from canary.identity.places import address_complement


def test_occupations_agree_with_age_and_sex():
    rng = random.Random(1)
    assert {occupation(rng, age, True) for age in range(0, 6)} == {""}
    assert occupation(rng, 8, True) == "Écolière" and occupation(rng, 12, False) == "Collégien"
    assert occupation(rng, 16, True) == "Lycéenne"
    assert {occupation(rng, 70, True) for _ in range(50)} == {"Retraitée"}
    working = Counter(occupation(rng, 40, False) for _ in range(2000))
    assert "Retraité" not in working and "Étudiant" not in working and len(working) > 20
    assert working.most_common(1)[0][1] < 400  # no single trade dominates: a spread like the site's
    students = sum(occupation(rng, 19, True) == "Étudiante" for _ in range(1000))
    assert 650 < students < 850


def test_address_complements_are_flats_or_residence_buildings():
    rng = random.Random(2)
    lines = [address_complement(rng) for _ in range(400)]
    assert all(line.startswith(("Résidence ", "Appartement ", "Apt ", "Bât. ", "Esc. ")) for line in lines)
    assert 150 < sum(line.startswith("Résidence ") for line in lines) < 350
    assert len(set(lines)) > 100
