"""Shared pieces of the admin dashboard tests: a registry with data, a login."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import bcrypt

from support.alert_helpers import add_source, make_identity, pipeline, plant
from canary.hits.hit import Channel, Observation
from canary.model import CanaryStatus, TokenKind, VerifyResult, VerifyState
from canary.registry.reportstore import save_scan_report
from listener.admin.config import AdminConfig

PASSWORD = "correct horse battery staple"
EVIL = "<script>alert(1)</script>"
# Cost 4: the test suite should not spend a quarter second on each bcrypt check.
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
SESSION_KEY = "k" * 40


def admin_config(**changes) -> AdminConfig:
    table = {"password_hash": HASH, "lockout_failures": 3, "lockout_minutes": 15, **changes}
    return AdminConfig.from_table(table, {"CANARY_ADMIN_SESSION_KEY": SESSION_KEY})


def scan_report_dict(source: str = "lis-rennes", found: int = 2) -> dict:
    """A small report in the canary.scan/1 shape (see docs/scan.md)."""
    return {
        "format": "canary.scan/1", "scanned_at": "2026-11-20T10:00:00+00:00",
        "paths": ["/leaks/patients.csv", f"/leaks/{EVIL}.zip"], "seconds": 1.25, "bytes": 123456,
        "engine": "pyahocorasick", "jobs": 1, "canaries_watched": 4,
        "files": [{"file": "/leaks/patients.csv", "member": None, "container": "plain",
                   "encoding": "utf-8", "bytes": 123000},
                  {"file": f"/leaks/{EVIL}.zip", "member": "a/b.csv", "container": "zip",
                   "encoding": "utf-8", "bytes": 456}],
        "sources": [{
            "source": source, "found": found, "planted": 3, "canaries": [1, 2], "retired_found": [],
            "batches": [{"batch": "lis-a", "found": found, "planted": 3}],
            "window": {"after": "2026-10-01T00:00:00+00:00", "after_canary": 2,
                       "before": "2026-10-15T00:00:00+00:00", "before_canary": 3,
                       "removed_before": None, "removed_canary": None,
                       "caveat": "the export may be older than its newest canary"},
            "completeness": {"found": found, "expected": 3, "share": 0.6667, "ci95": [0.2077, 0.9385]},
            "export_shapes": [{"file": "/leaks/patients.csv", "member": None, "container": "plain",
                               "encoding": "utf-8", "layout": "csv", "delimiter": ";",
                               "columns": ["nom", "prenom", EVIL], "date_formats": ["dd/mm/yyyy"],
                               "phone_formats": ["0X XX XX XX XX"], "nir_formats": [], "records": found}],
            "holds_more": [{"canary": 3, "batch": "lis-a", "planted_at": None, "hits": 2,
                            "channels": ["smtp"], "last_hit_at": None}],
            "matches": [],
        }],
        "unconfirmed": [],
        "problems": [{"file": f"/leaks/{EVIL}.zip", "member": "c.csv.gz", "message": "EOFError: truncated"}],
    }


def fill(registry, now: datetime | None = None) -> dict:
    """Two sources (one with a hostile name), canaries, hits over the last days, alerts, a scan."""
    now = now or datetime.now(timezone.utc)
    add_source(registry, "lis-rennes")
    add_source(registry, EVIL, establishment=f"Clinique {EVIL}")
    rennes = plant(registry, "lis-rennes", [1, 2, 3], batch_label="lis-a")
    evil = plant(registry, EVIL, [4], batch_label=f"batch-{EVIL}")
    registry.record_verify(rennes[0], VerifyResult(VerifyState.OK))
    registry.record_verify(rennes[1], VerifyResult(VerifyState.MISSING, ("row deleted",)))
    registry.set_status(rennes[2], CanaryStatus.RETIRED, "test")
    sink, _alerter, _ = pipeline(registry)
    # (hours ago, canary number, channel): incidents last 24 h, so the last three stay open.
    hits = [(480, 1, Channel.SMTP), (312, 2, Channel.HTTP), (312, 2, Channel.DNS), (192, 1, Channel.HTTP),
            (72, 1, Channel.SMTP), (72, 1, Channel.HTTP), (72, 2, Channel.DNS), (20, 2, Channel.HTTP),
            (0, 1, Channel.DNS), (0, 4, Channel.SMTP)]
    for hours_ago, n, channel in hits:
        identity = make_identity(n)
        kind, value = {Channel.SMTP: (TokenKind.EMAIL, identity.email),
                       Channel.HTTP: (TokenKind.URL_CODE, identity.url_code),
                       Channel.DNS: (TokenKind.DNS_LABEL, identity.dns_label)}[channel]
        sink.record(Observation(channel, kind, value, "203.0.113.5", {"user_agent": "Mozilla/5.0"},
                                now - timedelta(hours=hours_ago, minutes=5)))
    report_id = save_scan_report(registry, scan_report_dict(), operator=f"alice {EVIL}")
    return {"rennes": rennes, "evil": evil, "report": report_id}


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def log_in(client, username: str = "admin", password: str = PASSWORD, **environ):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"csrf_token": token, "username": username, "password": password,
                                       "next": "/"}, **environ)
