"""Canaries as old as the site's new patients: ages at registration read from the site, five-year bands."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import date

import sqlalchemy as sa

from canary.identity.ages import MIN_SITE_PATIENTS, AgeProfile, age_on, site_age_profile
from canary.model import CanaryStatus
from canary.planting.planter import open_seeder, plant
from support.lis_site import build_site
from support.plant_helpers import add_source, new_registry
from support.sql_seeder_helpers import MAPPING


def test_site_ages_become_five_year_bands_and_too_few_keep_the_default():
    assert site_age_profile(Counter({3: 10})) is None  # too few to say anything of the site
    assert site_age_profile(None) is None
    profile = site_age_profile(Counter({71: 30, 74: 10, 88: 20, 121: 5, -1: 4}))
    assert profile == {"70-74": 40.0, "85-89": 20.0}  # out of range ages dropped
    drawn = AgeProfile.from_mapping(profile)
    assert set(drawn.ages) <= set(range(70, 75)) | set(range(85, 90))
    assert MIN_SITE_PATIENTS == 50


def _ages_of_planted(registry, source: str) -> list[int]:
    today = date.today()
    return [age_on(r.identity.birth_date, today)
            for r in registry.list_canaries(source=source, status=(CanaryStatus.PLANTED,))]


def test_the_sql_seeder_reads_ages_at_registration_and_canaries_follow_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'lis.db'}"
    build_site(url, 300, seed=4)
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a geriatric lab: every patient 80 to 89 when registered
        rows = conn.execute(sa.text("SELECT id, cree_le FROM patients")).all()
        for n, (pid, created) in enumerate(rows):
            registered = date.fromisoformat(str(created)[:10])
            born = registered.replace(year=registered.year - 80 - n % 10, day=1)
            conn.execute(sa.text("UPDATE patients SET date_naissance = :b WHERE id = :i"), {"b": born, "i": pid})
    engine.dispose()
    registry, config = new_registry(tmp_path)
    add_source(registry, "lis", "sql", url=url, mapping=str(MAPPING))
    seeder = open_seeder(registry.get_source("lis"))
    try:
        ages = seeder.site_ages()
    finally:
        seeder.close()
    assert sum(ages.values()) == 300 and set(ages) <= set(range(80, 90))
    plant(registry, config, "lis", 12, seed=5)
    assert all(80 <= age <= 91 for age in _ages_of_planted(registry, "lis"))  # a year or two since: today's age

    pinned = dataclasses.replace(config, age_profile={"18-44": 1})  # identities.age_profile wins
    add_source(registry, "lis2", "sql", url=url, mapping=str(MAPPING))
    plant(registry, pinned, "lis2", 8, seed=6)
    assert all(18 <= age <= 44 for age in _ages_of_planted(registry, "lis2"))
    registry.close()
