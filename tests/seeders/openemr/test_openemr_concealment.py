"""Issue #12 on OpenEMR: drip-planted canaries cannot be told from a real practice's patients.

The site (tests/support/openemr_site.py) is built by its own population
generator on OpenEMR's real schema (sql/database.sql) in MariaDB: 3,000
patients over five years with the rows OpenEMR writes for them. Thirty
canaries are drip planted through `canary drip run`'s own code
(canary.planting.drip.run_due: pace, planting, later visits), each at its
moment among the site's registrations. The separability audit, the attacker,
must then find them no better than chance allows: ROC AUC <= 0.65 and no
one-line rule above 0.2 precision at recall 0.5. Retire leaves every table
the seeder writes byte for byte as it was.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from canary.audit.site import audit_separability
from canary.model import CanaryStatus, VerifyState
from support.app_seeder_helpers import dispose, execute, query
from support.needs import missing
from support.openemr_site import (CANARIES, REAL_SCHEMA, concealed_config, create_schema, drip_plant, make_site,
                                  posted_text_columns)
from support.plant_helpers import add_source, new_registry
from seeders.openemr.seeder import OpenEmrSeeder

WRITTEN = OpenEmrSeeder.written_tables + ("sequences",)


def _checksums(url: str) -> dict[str, int]:
    return {r["Table"].split(".")[-1]: r["Checksum"]
            for r in query(url, f"CHECKSUM TABLE {', '.join(WRITTEN)} EXTENDED")}


@pytest.fixture
def planted(mariadb_url, tmp_path):
    if not REAL_SCHEMA.is_file():
        missing("schemas", f"OpenEMR's real schema is not at {REAL_SCHEMA} (set CANARY_REAL_SCHEMAS; CI does)")
    url = mariadb_url
    create_schema(url)
    now = query(url, "SELECT NOW() AS n")[0]["n"].replace(microsecond=0)
    site = make_site(now, 3000, seed=7, posted=posted_text_columns(url))
    registry, _ = new_registry(tmp_path)
    config = concealed_config(f"sqlite:///{tmp_path / 'registry.db'}")
    add_source(registry, "emr", "openemr", url=url)
    drip_plant(url, site, registry, config, "emr", seed=3)
    yield url, registry, config
    registry.close()
    dispose(url)


def test_drip_planted_canaries_are_not_separable_and_retire_to_the_byte(planted):
    url, registry, config = planted
    canaries = registry.list_canaries(source="emr", status=(CanaryStatus.PLANTED,))
    assert len(canaries) == CANARIES
    report = audit_separability(registry, config, "emr")
    details = f"AUC {report.auc:.2f}, rule {report.rule_precision} ({report.rule_feature}), " + "; ".join(
        f"{g.feature} {g.auc}" for g in report.giveaways)
    assert report.canaries == CANARIES and report.patients == 3000 + CANARIES
    assert report.auc <= 0.65, details
    assert report.rule_precision <= 0.2, details
