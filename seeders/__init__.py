"""Seeders: one package per target system, each a ``canary.planting.seeder.Seeder``.

    base.py      the interface a seeder implements (re-exported from the core)
    sql/         shared SQL machinery (target reflection, mappings, blending) and the generic ``sql`` seeder
    common/      writings shared by every system (names, dates, phones as applications write them)
    <system>/    seeder.py (the class registered by name), host.py / rows.py / setup.py ... its own parts

Seeders are found by name through the ``canary.seeders`` entry points
(``canary.planting.catalog``); nothing is imported here.
"""
