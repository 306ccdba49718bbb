"""`canary scan` on the command line: text, --json, --report, --alert, exit codes."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from support import leakgen
from canary.cli.scan import hibp, scan
from canary.config import Config
from canary.registry import Registry


@pytest.fixture
def env(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with Registry.open(url, create=True) as registry:
        w = leakgen.World(registry, seed=5)
        w.source("lis")
        w.source("dpi")
        w.plant("lis", 5, datetime(2024, 1, 1, tzinfo=timezone.utc))
        w.plant("dpi", 5, datetime(2024, 2, 1, tzinfo=timezone.utc))
        config = Config(path=None, registry_url=url, contacts=leakgen.contacts(), raw={})
        yield SimpleNamespace(registry=registry, config=config, world=w)


def _leak(env, tmp_path) -> str:
    rng = random.Random(1)
    ids = env.world.by_source["lis"][:3] + env.world.by_source["dpi"][:2]
    rows = [leakgen.canary_row(env.world.identity(c), rng) for c in ids]
    rows[0]["adresse"] = "<script>alert(1)</script>"
    path = tmp_path / "leak.csv"
    path.write_text(leakgen.to_csv(rows), encoding="utf-8")
    return str(path)


def test_text_json_and_html(env, tmp_path, monkeypatch):
    monkeypatch.setenv("CANARY_SCAN_CACHE", str(tmp_path / "cache"))
    leak = _leak(env, tmp_path)
    runner = CliRunner()
    result = runner.invoke(scan, [leak, "--report", str(tmp_path / "r.html")], obj=env)
    assert result.exit_code == 1, result.output
    assert "Source lis: 3 canaries found of 5 planted" in result.output
    assert "Source dpi: 2 canaries found of 5 planted" in result.output
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html and "Source lis" in html
    result = runner.invoke(scan, [leak, "--json"], obj=env)
    data = json.loads(result.output)
    assert data["format"] == "canary.scan/1"
    assert [(s["source"], s["found"], s["planted"]) for s in data["sources"]] == [("lis", 3, 5), ("dpi", 2, 5)]
    assert set(data["sources"][0]) >= {"window", "completeness", "export_shapes", "holds_more", "matches", "batches"}


def test_nothing_found_exits_zero(env, tmp_path, monkeypatch):
    monkeypatch.setenv("CANARY_SCAN_CACHE", str(tmp_path / "cache"))
    (tmp_path / "empty.csv").write_text("nom;prenom\nMartin;Paul\n", encoding="utf-8")
    result = CliRunner().invoke(scan, [str(tmp_path / "empty.csv")], obj=env)
    assert result.exit_code == 0 and "No canary found" in result.output


def test_alert_raises_one_alert_per_source(env, tmp_path, monkeypatch):
    monkeypatch.setenv("CANARY_SCAN_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(scan, [_leak(env, tmp_path), "--alert"], obj=env)
    assert result.exit_code == 1
    hits = env.registry.list_hits()
    assert sorted(h.source for h in hits) == ["dpi", "lis"] and {h.channel.value for h in hits} == {"breach"}
    alerts = env.registry.list_alerts()
    assert sorted(a.source for a in alerts) == ["dpi", "lis"]
    # A scan's own alert hit is not a "use": the next scan reports no "holds more".
    again = CliRunner().invoke(scan, [_leak(env, tmp_path), "--json"], obj=env)
    assert all(s["holds_more"] == [] for s in json.loads(again.output)["sources"])


def test_hibp_group_has_sync():
    assert "sync" in hibp.commands
