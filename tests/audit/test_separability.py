"""`canary audit SOURCE --separability`: a classifier against the site's own patients.

End to end on a realistic LIS site built by tests/support/lis_site.py (its own
population generator, not canary/identity), through the generic SQL seeder
and a real registry; the feature builder and AUC on hand-made rows.
"""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import date, datetime

import numpy as np
import pytest
from click.testing import CliRunner

from canary.audit.features import build_features, phone_block
from canary.audit.separability import _auc, separability
from canary.audit.site import audit_separability, placed_refs
from canary.cli.main import cli
from canary.errors import CanaryError
from canary.model import CanaryStatus
from canary.planting.planter import open_seeder, plant
from canary.planting.seeder import AuditPatient
from support.lis_site import build_site
from support.plant_helpers import POOL, add_source, new_registry
from support.sql_seeder_helpers import MAPPING, mapping_without_related, source_spec

SITE_PATIENTS = 1500


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A 1,500-patient LIS with 30 canaries planted the naive way (one batch, today)."""
    where = tmp_path_factory.mktemp("site")
    url = f"sqlite:///{where / 'lis.db'}"
    build_site(url, SITE_PATIENTS, seed=3)
    registry, config = new_registry(where)
    add_source(registry, "lis", "sql", url=url, mapping=str(MAPPING))
    plant(registry, config, "lis", 30, seed=11)
    yield registry, config, url, where
    registry.close()


def test_the_sql_seeder_reads_every_patient_with_its_related_rows(site):
    registry, _config, url, _ = site
    seeder = open_seeder(registry.get_source("lis"))
    try:
        patients = list(seeder.patients_for_audit())
    finally:
        seeder.close()
    assert len(patients) == SITE_PATIENTS + 30
    first = patients[-1]  # oldest first in the site, the list is newest first
    assert first.ref == ("patients", (("id", 1),))
    # contacts and portail from the mapping, analyses found through its foreign key
    assert set(first.related) == {"contacts", "portail", "analyses"}
    assert first.related["analyses"] >= 1 and first.related_first["analyses"] is not None
    assert first.created == first.values["cree_le"]
    with_email = [p for p in patients if any("@" in c for c in p.contacts)]
    assert len(with_email) > SITE_PATIENTS // 3


def test_a_naive_plant_is_detected_and_the_tells_are_named(site):
    registry, config, _url, _ = site
    report = audit_separability(registry, config, "lis")
    assert report.canaries == 30 and report.patients == SITE_PATIENTS + 30
    assert report.auc > 0.95 and report.failed
    assert report.low <= report.auc <= report.high and report.low > 0.65
    named = {g.feature for g in report.giveaways}
    assert len(report.giveaways) == 5
    # The mapping writes a footprint (results on the registration day): no "no result" tell any more;
    # the contact points and the all-at-once plant give a naive plant away whatever the hour of the test.
    assert "analyses:none" not in named
    assert named & {"phone block:patients", "patients.cree_le:age", "email domain:recent_share",
                    "patients.code_postal:share", "email domain:patients"}
    assert report.rule_precision == 1.0 and report.rule_feature  # one column finds them with no false positive


def test_patients_of_the_site_marked_at_random_are_not_separable(site):
    registry, _config, _url, _ = site
    seeder = open_seeder(registry.get_source("lis"))
    try:
        real = [p for p in seeder.patients_for_audit() if p.values["id"] <= SITE_PATIENTS]
    finally:
        seeder.close()
    chosen = set(random.Random(4).sample(range(len(real)), 30))
    report = separability("lis", real, [i in chosen for i in range(len(real))])
    assert report.auc <= 0.65 and not report.failed
    assert report.rule_precision < 0.2  # the bar for one-line rules, met by real patients


def test_recent_patients_are_compared_with_the_patients_registered_in_their_period(site):
    """Real patients of the site's last months, marked as if they were canaries: recency alone tells them
    from the whole site, not from the patients registered when they were."""
    registry, _config, _url, _ = site
    seeder = open_seeder(registry.get_source("lis"))
    try:
        real = [p for p in seeder.patients_for_audit() if p.values["id"] <= SITE_PATIENTS]
    finally:
        seeder.close()
    order = sorted(range(len(real)), key=lambda i: real[i].created)
    recent = order[-450:]  # the site's last 450 registrations: 30 % of its patients
    chosen = set(random.Random(5).sample(recent, 30))
    report = separability("lis", real, [i in chosen for i in range(len(real))])
    assert report.comparison == "period"
    first, last = min(real[i].created for i in chosen), max(real[i].created for i in chosen)
    assert (report.period_start, report.period_end) == (first, last)
    in_period = sum(1 for p in real if first <= p.created <= last) - 30
    assert report.compared == in_period and report.canary_share == pytest.approx(30 / (30 + in_period))
    assert report.auc_site > 0.75  # against the whole site, recency finds them (0.85 in theory)
    assert report.auc <= 0.65 and not report.failed, report.giveaways  # not against their own period
    assert report.rule_precision < 0.2  # "registered lately" as a one-line rule, on the whole site


def test_a_burst_is_compared_with_the_registrations_nearest_to_it():
    base = datetime(2024, 1, 1, 9)
    patients = [_patient(n, created=base.replace(day=1 + n % 28, month=1 + n % 12), note=str(n % 5))
                for n in range(400)]
    burst = datetime(2025, 6, 1, 9, 30)
    patients += [_patient(400 + n, created=burst, note=str(n % 5)) for n in range(10)]
    flags = [p.values["id"] >= 400 for p in patients]
    report = separability("lis", patients, flags)
    assert report.comparison == "period" and report.compared == 100  # ten per canary, the nearest
    assert report.canary_share == 1.0  # nobody else registered in the burst's second
    # widened down to the hundred nearest registrations, no further
    assert report.period_end == burst and report.period_start == sorted(p.created for p in patients[:400])[-100]


def test_patients_that_cannot_be_dated_are_compared_with_a_sample_of_the_site():
    patients = [_patient(n, note=str(n % 5)) for n in range(200)]
    report = separability("lis", patients, [n < 10 for n in range(200)])
    assert report.comparison == "site" and report.period_start is None and report.compared == 190
    assert report.auc == report.auc_site


def test_the_command_exits_1_with_json_and_2_on_bad_input(site, tmp_path):
    registry, _config, url, where = site
    config_file = tmp_path / "canary.toml"
    (tmp_path / "pool.txt").write_text("\n".join(POOL), encoding="utf-8")
    config_file.write_text(f"""
[registry]
url = "sqlite:///{where / 'registry.db'}"
[contacts]
email_domains = ["mel-famille.fr", "boite-perso.fr"]
dns_zone = "mon-rdv-sante.fr"
portal_url = "https://espace.mon-rdv-sante.fr/acces/"
phone_pool_file = "pool.txt"
[audit]
separability_threshold = 0.99
""", encoding="utf-8")
    run = CliRunner().invoke
    result = run(cli, ["--config", str(config_file), "audit", "lis", "--separability", "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["threshold"] == 0.99 and data["failed"] is True and data["canaries"] == 30
    assert data["comparison"] == "period" and data["period_start"] <= data["period_end"]
    assert 0 < data["canary_share"] <= 1 and 0.5 <= data["auc_site"] <= 1 and data["model_site"]
    assert data["auc_low"] <= data["auc"] <= data["auc_high"]
    assert data["rule_precision"] == 1.0 and data["rule_feature"]
    assert len(data["giveaways"]) == 5 and {"feature", "kind", "auc", "canaries", "others", "fix"} == set(
        data["giveaways"][0])
    text = run(cli, ["--config", str(config_file), "audit", "lis", "--separability"]).output
    assert text.startswith("separability of lis: ROC AUC ") and "fix: " in text
    assert "registered in the same period" in text and "recency included: ROC AUC" in text

    add_source(registry, "fresh", "sql", url=url, mapping=str(MAPPING))
    empty = run(cli, ["--config", str(config_file), "audit", "fresh", "--separability"])
    assert empty.exit_code == 2
    assert empty.output.strip().splitlines() == [
        "canary: error: source 'fresh' has no planted canaries: nothing to tell apart "
        "(plant some with `canary plant fresh` first)"]
    alone = run(cli, ["--config", str(config_file), "audit", "--separability"])
    assert alone.exit_code == 2 and "--separability needs a SOURCE" in alone.output


def _identity_only(folder):
    """The test mapping with no column, row or share drawn from the site (it can plant into an empty one)."""
    lines = mapping_without_related(folder).read_text(encoding="utf-8").splitlines()
    kept = [line.replace(', fill = "site"', "").replace(', after = "cree_le"', "") for line in lines
            if "site = \"values\"" not in line]
    path = folder / "identity_only.toml"
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return path


def test_a_site_with_only_canaries_is_one_clear_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'lis.db'}"
    build_site(url, 0)
    registry, config = new_registry(tmp_path)
    add_source(registry, "lis", "sql", url=url, mapping=str(MAPPING))
    # A mapping that draws from the site cannot plant into an empty one: one line, nothing written.
    with pytest.raises(CanaryError, match="table patients has no patients to learn from"):
        plant(registry, config, "lis", 6, seed=2)
    assert registry.list_canaries(source="lis", status=(CanaryStatus.PLANTED,)) == []
    add_source(registry, "plain", "sql", url=url, mapping=str(_identity_only(tmp_path)))
    plant(registry, config, "plain", 6, seed=2)
    with pytest.raises(CanaryError, match="holds 0 patients besides the canaries, at least 20"):
        audit_separability(registry, config, "plain")
    bad = dataclasses.replace(config, raw={"audit": {"separability_threshold": 2}})
    with pytest.raises(CanaryError, match="between 0.5 and 1"):
        audit_separability(registry, bad, "lis")
    registry.close()


# -- pieces -------------------------------------------------------------------------


def _patient(n: int, **values) -> AuditPatient:
    row = {"id": n, **values}
    return AuditPatient(ref=("p", (("id", n),)), values=row, related={"visits": n % 3},
                        related_first={"visits": None}, created=values.get("created"))


def test_features_name_fill_precision_and_contact_clustering():
    patients = [
        _patient(1, created=datetime(2024, 1, 2, 9, 0, 0, 250000), tel="06 12 34 56 78", note=None,
                 born=date(1950, 1, 1)),
        _patient(2, created=datetime(2024, 3, 2, 10, 0, 0), tel="06.12.34.99.99", note="", born=date(1990, 1, 1)),
        _patient(3, created=datetime(2024, 5, 2, 11, 0, 0), tel="+33712345678", note="x", born=date(2000, 1, 1)),
    ]
    matrix = build_features(patients)
    names = {f.name for f in matrix.features}
    assert {"p.note:null", "p.note:empty", "p.created:subsecond", "p.created:age", "visits:rows",
            "phone block:patients"} <= names
    assert list(matrix.column("p.created:subsecond")) == [1.0, 0.0, 0.0]
    assert list(matrix.column("p.note:empty")) == [0.0, 1.0, 0.0]
    assert np.allclose(np.expm1(matrix.column("phone block:patients")), [2, 2, 1])
    assert np.allclose(matrix.column("p.born:years"), [50, 10, 0], atol=0.02)  # ages, from the youngest
    assert "p.id:null" not in names  # the key is not a feature, constant columns are dropped


@pytest.mark.parametrize("text,block", [("06 12 34 56 78", "061234"), ("+33612345678", "061234"),
                                        ("02.99.11.22.33", "029911"), ("12345", None), ("0012345678", None)])
def test_phone_blocks_are_all_but_the_last_four_digits(text, block):
    assert phone_block(text) == block


def test_auc_by_ranks_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.random(300) < 0.2
    scores = np.round(rng.random(300) + y * 0.3, 1)  # ties included
    assert _auc(y, scores) == pytest.approx(roc_auc_score(y, scores))


def test_placed_refs_come_from_the_placement_keys():
    class Record:
        def __init__(self, rows):
            self.placement = type("P", (), {"rows": rows})()

    refs = placed_refs([Record([{"table": "patients", "key": {"id": 7}}, {"table": "contacts", "key": {"id": 9}}]),
                        Record([])])
    assert refs == {("patients", frozenset({("id", 7)})), ("contacts", frozenset({("id", 9)}))}
    assert source_spec().seeder == "sql"


def test_a_seeder_that_cannot_read_its_patients_is_one_clear_error(tmp_path, monkeypatch):
    from seeders.sql.seeder import SqlSeeder

    url = f"sqlite:///{tmp_path / 'lis.db'}"
    build_site(url, 30)
    registry, config = new_registry(tmp_path)
    add_source(registry, "lis", "sql", url=url, mapping=str(MAPPING))
    plant(registry, config, "lis", 5, seed=1)
    monkeypatch.setattr(SqlSeeder, "_site_layout", lambda self: None)
    with pytest.raises(CanaryError, match="seeder 'sql' of source 'lis' cannot read its patients"):
        audit_separability(registry, config, "lis")
    registry.close()
