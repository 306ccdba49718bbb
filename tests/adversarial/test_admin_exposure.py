"""The admin address: /metrics tells nothing about canaries or hits to an untrusted client,
and concurrent wrong logins check no more passwords than the lockout allows."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

from support.admin_helpers import admin_config
from support.alert_helpers import sqlite_registry  # noqa: F401 (fixture)
from listener.admin import auth
from listener.admin.app import create_admin_app
from listener.admin.auth import Authenticator
from listener.metrics import ListenerMetrics


def metrics_app(registry, token: str | None = None):
    metrics = ListenerMetrics()
    metrics.watch_tokens(lambda: 42)
    metrics.watch_journal(lambda: {"appended": 7, "stored": 7, "pending": 0})
    metrics.hit("dns", "human")
    metrics.alert_sinks(["email"])
    metrics.alert_sent("email")
    config = replace(admin_config(), metrics_token=token)
    return create_admin_app(registry, config, metrics=metrics, readiness=lambda: {}).test_client()


def scrape(client, remote: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": remote})
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_a_remote_scraper_without_the_token_sees_no_canary_or_hit_figure(sqlite_registry):  # noqa: F811
    client = metrics_app(sqlite_registry, token="s3cret-token-for-prometheus")
    public = scrape(client, "198.51.100.7")
    for private in ("canary_tokens_watched", "canary_hits_total", "canary_hit_journal", "canary_alerts_sent",
                    "canary_dns_hits"):
        assert private not in public, private
    assert "canary_listener_info" in public
    assert "canary_listener_start_time_seconds" in public
    assert scrape(client, "198.51.100.7", token="wrong") == public
    full = scrape(client, "198.51.100.7", token="s3cret-token-for-prometheus")
    assert "canary_tokens_watched 42.0" in full and 'canary_hits_total{channel="dns",classification="human"} 1.0' in full
    assert "canary_tokens_watched 42.0" in scrape(client, "127.0.0.1")  # Prometheus on this host


def test_concurrent_wrong_logins_check_at_most_the_lockout_count(monkeypatch):
    checked = []
    real = auth._checkpw

    def counting(password, expected):
        checked.append(password)
        return real(password, expected)

    monkeypatch.setattr(auth, "_checkpw", counting)
    authenticator = Authenticator(admin_config(lockout_failures=5))
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda n: authenticator.login("admin", f"guess{n}", "203.0.113.9"), range(40)))
    assert len(checked) == 5
    assert sum(r.locked for r in results) == 36 and not any(r.ok for r in results)
    assert authenticator.lockout.duration == timedelta(minutes=15)


def test_the_token_is_read_from_the_named_variable():
    import pytest

    from canary.errors import ConfigError
    from listener.admin.config import AdminConfig

    config = AdminConfig.from_table({"metrics_token_env": "PROM_TOKEN"}, {"PROM_TOKEN": "abc"})
    assert config.metrics_token == "abc" and "abc" not in repr(config)
    with pytest.raises(ConfigError, match="PROM_TOKEN .* is not set"):
        AdminConfig.from_table({"metrics_token_env": "PROM_TOKEN"}, {})
