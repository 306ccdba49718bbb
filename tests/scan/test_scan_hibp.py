"""`canary hibp sync` against a local server speaking the HIBP v3 domain search API."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from support import leakgen
from canary.config import Config
from canary.errors import ConfigError
from canary.registry import Registry
from canary.scan.hibp import HibpClient, HibpError, HibpSchedule, sync_configured

KEY = "test-key-0123"


class FakeHibp:
    """GET /api/v3/breacheddomain/<domain>: key checked, one 429 first, then the breaches."""

    def __init__(self, breaches: dict[str, dict[str, list[str]]]) -> None:
        self.breaches = breaches
        self.requests: list[tuple[str, str, str]] = []
        self.throttled = False
        app = Flask("fake-hibp")

        @app.get("/api/v3/breacheddomain/<domain>")
        def breached(domain):
            self.requests.append((domain, request.headers.get("hibp-api-key", ""),
                                  request.headers.get("user-agent", "")))
            if request.headers.get("hibp-api-key") != KEY:
                return jsonify({"statusCode": 401, "message": "Access denied"}), 401
            if not self.throttled:
                self.throttled = True
                return jsonify({"statusCode": 429}), 429, {"Retry-After": "2"}
            if domain == "unverified.fr":
                return jsonify({"statusCode": 403}), 403
            if domain not in self.breaches:
                return "", 404
            return jsonify(self.breaches[domain])

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v3"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHibp":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def world(tmp_path):
    with Registry.open(f"sqlite:///{tmp_path / 'r.db'}", create=True) as registry:
        w = leakgen.World(registry, seed=9)
        w.source("lis")
        w.plant("lis", 6, datetime(2024, 1, 1, tzinfo=timezone.utc))
        yield w


def _config(world, url: str) -> Config:
    return Config(path=None, registry_url="sqlite://", contacts=leakgen.contacts(),
                  raw={"hibp": {"base_url": url, "api_key_env": "TEST_HIBP_KEY"}})


def test_sync_records_one_breach_hit_per_canary_and_breach_and_never_twice(world):
    ours = [world.identity(c).email for c in world.by_source["lis"] if
            world.identity(c).email.endswith("@mel-famille.fr")][:2]
    assert len(ours) == 2
    aliases = {ours[0].split("@")[0]: ["Adobe"], ours[1].split("@")[0]: ["Adobe", "Canva"],
               "not.a.canary": ["Adobe"]}
    waits: list[float] = []
    with FakeHibp({"mel-famille.fr": aliases}) as server:
        config = _config(world, server.url)
        env = {"TEST_HIBP_KEY": KEY}
        first = sync_configured(world.registry, config, env, sleep=waits.append,
                                domains=["mel-famille.fr", "boite-perso.fr", "unverified.fr"])
        second = sync_configured(world.registry, config, env, sleep=waits.append,
                                 domains=["mel-famille.fr"])
    assert waits == [2.0]  # the 429 was honoured once
    assert [(d.domain, d.status) for d in first.domains] == [
        ("mel-famille.fr", "ok"), ("boite-perso.fr", "none"), ("unverified.fr", "error")]
    assert len(first.recorded) == 3 and first.not_canaries == 1
    assert second.recorded == [] and second.already == 3
    hits = world.registry.list_hits()
    assert sorted((h.value, h.evidence["breach"], h.channel.value) for h in hits) == sorted(
        [(ours[0], "Adobe", "breach"), (ours[1], "Adobe", "breach"), (ours[1], "Canva", "breach")])
    assert all(h.canary_id is not None for h in hits)
    alerts = world.registry.list_alerts()
    assert alerts and all(a.source == "lis" for a in alerts)
    assert all(key == KEY and "canary-patients" in agent for _, key, agent in server.requests)


def test_bad_key_and_missing_key_are_one_line_errors(world):
    with FakeHibp({}) as server:
        client = HibpClient("wrong", base_url=server.url, sleep=lambda s: None)
        server.throttled = True
        with pytest.raises(HibpError, match="check the API key"):
            client.breached_domain("mel-famille.fr")
    with pytest.raises(ConfigError, match="HIBP API key"):
        sync_configured(world.registry, _config(world, "http://127.0.0.1:9/api/v3"), {})


def test_schedule_runs_until_stopped():
    runs = []
    schedule = HibpSchedule(lambda: runs.append(time.monotonic()), 0.05, first_delay=0.0)
    schedule.start()
    deadline = time.monotonic() + 5
    while len(runs) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    schedule.stop()
    count = len(runs)
    time.sleep(0.15)
    assert count >= 3 and len(runs) == count
