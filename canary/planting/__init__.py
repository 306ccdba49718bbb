"""Planting: identity -> tokens -> seeder -> registry, then verify, retire and drip (docs/seeders.md, docs/drip.md).

    catalog.py   Seeders by name: ``sql`` and whatever installed packages add
    drip.py      Drip planting: one canary at a time, at random working-hour moments
    events.py    A life over time: later events added to planted canaries through the seeder
    pace.py      How fast drip may plant: canaries stay a small share of the site's new patients
    planter.py   Planting: identity -> tokens -> seeder.plant -> registry
    schedule.py  When drip plantings happen: random minutes of French working hours
    seeder.py    The seeder interface: how canaries get into (and out of) a target system
    sources.py   Building a SourceSpec from `canary source add` arguments, with every check
    upkeep.py    Verify and retire: read back or remove what was planted, source by source

Nothing is imported here: import the module you need.
"""
