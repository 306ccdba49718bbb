"""A canary that someone deletes or edits is a hit of channel `verify`, alerted once."""

from __future__ import annotations

from canary.planting import planter as planting

from canary.planting import upkeep
from canary.hits.hit import Channel
from support.plant_helpers import add_source, new_registry
from support.sql_seeder_helpers import MAPPING, create_schema, execute, populate_real


def test_missing_canary_is_recorded_as_a_verify_hit_once(tmp_path, sqlite_url):
    create_schema(sqlite_url)
    populate_real(sqlite_url, 20)
    registry, config = new_registry(tmp_path)
    add_source(registry, "lis", "sql", url=sqlite_url, mapping=str(MAPPING))
    result = planting.plant(registry, config, "lis", 3)
    victim = registry.get_canary(result.canary_ids[0])
    execute(sqlite_url, "DELETE FROM contacts WHERE patient_id IN (SELECT id FROM patients WHERE nir = :nir)",
            nir=victim.identity.nir)

    report = upkeep.verify(registry, config=config)
    assert [f.canary_id for f in report.problems] == [victim.id]
    hits = [h for h in registry.list_hits() if h.channel == Channel.VERIFY]
    assert [(h.canary_id, h.source, h.evidence["state"]) for h in hits] == [(victim.id, "lis", "missing")]

    upkeep.verify(registry, config=config)  # still missing: no second hit, no new alert
    assert len([h for h in registry.list_hits() if h.channel == Channel.VERIFY]) == 1

    upkeep.verify(registry)  # without config (library use): findings only
    assert len([h for h in registry.list_hits() if h.channel == Channel.VERIFY]) == 1
