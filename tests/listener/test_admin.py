"""The admin dashboard: login, lockout, CSRF, sessions, pages, escaping, ops endpoints, scan reports."""

from __future__ import annotations

import json
import logging
import random
import re
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import bcrypt
import pytest
from click.testing import CliRunner
from flask import session
from flask_wtf.csrf import generate_csrf
from freezegun import freeze_time

from support import leakgen
from support.admin_helpers import EVIL, HASH, PASSWORD, admin_config, csrf_token, fill, log_in, scan_report_dict
from support.alert_helpers import registry, registry_sqlite_url, registry_url, sqlite_registry  # noqa: F401 (fixtures)
from canary.cli.main import cli
from canary.config import Config
from canary.errors import ConfigError
from canary.hits.hit import Channel, Classification, Hit
from canary.model import TokenKind
from canary.registry import Registry
from canary.registry.reportstore import count_scan_reports, get_scan_report, list_scan_reports, save_scan_report
from listener.admin import AdminConfig, admin_bind, create_admin_app
from listener.admin import queries
from listener.admin.charts import daily_counts, timeline_svg

CSP = ("default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
       "form-action 'self'")
T0 = datetime(2026, 3, 14, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def app(sqlite_registry):
    fill(sqlite_registry)
    return create_admin_app(sqlite_registry, admin_config())


@pytest.fixture
def client(app):
    client = app.test_client()
    assert log_in(client).status_code == 302
    return client


def _body(response) -> str:
    return response.get_data(as_text=True)


def _without_token(html: str) -> str:
    return re.sub(r'name="csrf_token" value="[^"]+"', "", html)


# -- configuration --------------------------------------------------------------------------


def test_config_defaults_and_checks():
    config = AdminConfig.from_table({}, {})
    assert (config.username, config.password_hash, config.session_key, config.secure_cookies) == \
        ("admin", None, None, True)
    assert (config.session_minutes, config.lockout_failures, config.lockout_minutes, config.read_only) == \
        (120, 5, 15, True)
    assert "password_hash" not in repr(AdminConfig.from_table({"password_hash": HASH}, {}))
    with pytest.raises(ConfigError, match="not a bcrypt hash") as err:
        AdminConfig.from_table({"password_hash": "hunter2-plain"}, {})
    assert "hunter2" not in str(err.value)  # a password pasted by mistake is never echoed
    with pytest.raises(ConfigError, match="at least 32"):
        AdminConfig.from_table({}, {"CANARY_ADMIN_SESSION_KEY": "short"})
    with pytest.raises(ConfigError, match="no write action"):
        AdminConfig.from_table({"read_only": False}, {})
    with pytest.raises(ConfigError, match="lockout_failures"):
        AdminConfig.from_table({"lockout_failures": 0}, {})
    assert AdminConfig.from_table({"session_key_env": "K"}, {"K": "x" * 32}).session_key == b"x" * 32


def test_admin_address_is_loopback_and_never_the_public_port():
    assert admin_bind({}) == ("127.0.0.1", 8081)
    assert admin_bind({"admin": "10.0.0.5:9000"}) == ("10.0.0.5", 9000)
    assert admin_bind({}, "127.0.0.1:0") == ("127.0.0.1", 0)
    with pytest.raises(ConfigError, match="public HTTP listener"):
        admin_bind({"http": "0.0.0.0:80", "admin": "127.0.0.1:80"})
    with pytest.raises(ConfigError, match="public HTTP listener"):
        admin_bind({}, "127.0.0.1:8443", http_override="0.0.0.0:8443")


def test_the_admin_table_is_accepted_by_the_config_loader(tmp_path):
    from canary.config import load_config

    path = tmp_path / "canary.toml"
    path.write_text(f'[contacts]\nemail_domains = ["mail-canary.fr"]\ndns_zone = "dns.example.fr"\n'
                    f'portal_url = "https://portail.example.fr/p/"\nphone_pool = ["+33612340000"]\n'
                    f'[listener]\nadmin = "127.0.0.1:9090"\n[admin]\npassword_hash = "{HASH}"\n'
                    f'lockout_minutes = 30\n', encoding="utf-8")
    config = load_config(path)
    admin = AdminConfig.from_table(config.raw["admin"], {})
    assert admin.lockout_minutes == 30 and admin.password_hash == HASH.encode()
    assert admin_bind(config.raw["listener"]) == ("127.0.0.1", 9090)


# -- login, sessions, lockout, CSRF ---------------------------------------------------------


def test_pages_need_a_login_and_ops_endpoints_do_not(app):
    client = app.test_client()
    response = client.get("/sources/lis-rennes?page=2")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    for path in ("/", "/incidents", "/scans", "/scans/1"):
        assert client.get(path).status_code == 302
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_login_sets_a_secure_session_cookie_and_returns_to_the_page(app):
    client = app.test_client()
    page = client.get("/login?next=/incidents")
    response = client.post("/login", data={"csrf_token": csrf_token(_body(page)), "username": "admin",
                                           "password": PASSWORD, "next": "/incidents"})
    assert response.status_code == 302 and response.headers["Location"] == "/incidents"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-canary-admin=")
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie
    assert client.get("/incidents").status_code == 200


def test_login_only_sends_back_to_a_local_path(app):
    client = app.test_client()
    token = csrf_token(_body(client.get("/login")))
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        response = client.post("/login", data={"csrf_token": token, "username": "admin",
                                               "password": PASSWORD, "next": target})
        assert response.headers["Location"] == "/"
        client.post("/logout", data={"csrf_token": csrf_token(_body(client.get("/")))})
        token = csrf_token(_body(client.get("/login")))


def test_cookie_flags_follow_secure_cookies_false(sqlite_registry):
    app = create_admin_app(sqlite_registry, admin_config(secure_cookies=False))
    cookie = log_in(app.test_client()).headers["Set-Cookie"]
    assert cookie.startswith("canary-admin=") and "Secure" not in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_unknown_user_and_wrong_password_get_the_same_answer(app):
    client = app.test_client()
    wrong = log_in(client, "admin", "not the password")
    unknown = log_in(client, "root", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert _without_token(_body(wrong)) == _without_token(_body(unknown))
    assert "Wrong user name or password." in _body(wrong)
    assert "root" not in _body(unknown)  # the name typed is not written back


def test_lockout_after_repeated_failures_and_reopening_after_the_time(app, caplog):
    client = app.test_client()
    with freeze_time(T0) as clock:
        caplog.set_level(logging.WARNING, logger="canary.admin")
        assert [log_in(client, "admin", f"guess {i}").status_code for i in range(3)] == [401, 401, 429]
        locked = log_in(client)  # even the right password, while locked
        assert locked.status_code == 429 and "Too many failed logins" in _body(locked)
        assert "Set-Cookie" not in locked.headers or "sid" not in locked.headers.get("Set-Cookie", "")
        [record] = [r for r in caplog.records if getattr(r, "event", None) == "admin_lockout"]
        assert record.levelno == logging.WARNING and record.known_user is True and record.client == "127.0.0.1"
        assert "guess" not in json.dumps(vars(record), default=str)
        clock.tick(timedelta(minutes=14))
        assert log_in(client).status_code == 429
        clock.tick(timedelta(minutes=1, seconds=1))
        assert log_in(client).status_code == 302
        assert client.get("/").status_code == 200


def test_lockout_by_client_address_covers_every_user_name(app):
    client = app.test_client()
    with freeze_time(T0):
        for name in ("root", "administrator", "guest"):  # unknown names: same count, same answer
            log_in(client, name, "x")
        assert log_in(client).status_code == 429
        other = app.test_client()
        assert log_in(other, environ_base={"REMOTE_ADDR": "127.0.0.2"}).status_code == 302


def test_lockout_by_user_name_covers_every_address(app):
    with freeze_time(T0):
        for i in range(3):
            log_in(app.test_client(), "admin", "x", environ_base={"REMOTE_ADDR": f"10.0.0.{i}"})
        locked = log_in(app.test_client(), environ_base={"REMOTE_ADDR": "10.0.0.9"})
        assert locked.status_code == 429


def test_a_success_clears_earlier_failures(app):
    client = app.test_client()
    with freeze_time(T0):
        log_in(client, "admin", "x")
        log_in(client, "admin", "y")
        assert log_in(client).status_code == 302
        client.post("/logout", data={"csrf_token": csrf_token(_body(client.get("/")))})
        log_in(client, "admin", "z")
        log_in(client, "admin", "w")
        assert log_in(client).status_code == 302


def test_csrf_token_is_required(app, client):
    anonymous = app.test_client()
    anonymous.get("/login")
    refused = anonymous.post("/login", data={"username": "admin", "password": PASSWORD})
    assert refused.status_code == 400 and "Form expired" in _body(refused)
    assert anonymous.post("/login", data={"username": "admin", "password": PASSWORD,
                                          "csrf_token": "forged"}).status_code == 400
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200  # still logged in


def test_logout_ends_the_session_even_for_a_copied_cookie(app, client):
    cookie = client.get_cookie("__Host-canary-admin").value
    response = client.post("/logout", data={"csrf_token": csrf_token(_body(client.get("/")))})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert client.get("/").status_code == 302
    replay = app.test_client()
    replay.set_cookie("__Host-canary-admin", cookie)
    assert replay.get("/").status_code == 302


def test_sessions_expire(app):
    client = app.test_client()
    with freeze_time(T0) as clock:
        log_in(client)
        clock.tick(timedelta(minutes=119))
        assert client.get("/").status_code == 200
        clock.tick(timedelta(minutes=2))
        assert client.get("/").status_code == 302


def test_sessions_survive_a_restart_only_with_a_session_key(sqlite_registry):
    first = create_admin_app(sqlite_registry, admin_config())
    client = first.test_client()
    log_in(client)
    cookie = client.get_cookie("__Host-canary-admin").value
    again = create_admin_app(sqlite_registry, admin_config()).test_client()
    again.set_cookie("__Host-canary-admin", cookie)
    assert again.get("/").status_code == 200
    random_key = AdminConfig.from_table({"password_hash": HASH}, {})
    other = create_admin_app(sqlite_registry, random_key).test_client()
    other.set_cookie("__Host-canary-admin", cookie)
    assert other.get("/").status_code == 302


def test_without_a_password_hash_nobody_logs_in_and_the_page_says_how(sqlite_registry):
    app = create_admin_app(sqlite_registry, AdminConfig.from_table({}, {}))
    client = app.test_client()
    page = _body(client.get("/login"))
    assert "canary admin hash-password" in page and "password_hash" in page
    assert 'name="password"' not in page
    with app.test_request_context():  # the page has no form: make a valid token for this session
        token = generate_csrf()
        raw = session["csrf_token"]
    with client.session_transaction() as stored:
        stored["csrf_token"] = raw
    for password in ("", "anything", PASSWORD):
        response = client.post("/login", data={"csrf_token": token, "username": "admin", "password": password})
        assert response.status_code == 401


# -- pages ----------------------------------------------------------------------------------


def test_sources_page(client):
    page = _body(client.get("/"))
    assert 'href="/sources/lis-rennes"' in page and "CHU de Rennes" in page
    row = page[page.index('href="/sources/lis-rennes"'):].split("</tr>")[0]
    cells = re.findall(r'<td class="num[^"]*">(?:<span[^>]*>)?(\d+)', row)
    # planned, planted, missing, retired, then open incidents (2: canaries 1 and 2 were used today)
    assert cells[:4] == ["0", "1", "1", "1"]
    assert cells[4] == "2"
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert today in row  # last verify and last hit


def test_source_page_has_the_chart_and_the_canaries(client):
    response = client.get("/sources/lis-rennes")
    page = _body(response)
    assert response.status_code == 200
    assert page.count("<svg") == 1 and 'class="timeline"' in page
    assert page.count('class="bar"') >= 5 and "human" in page and "automated" in page
    assert "<script" not in page  # no script at all, the chart included
    rows = re.findall(r'<tr>\s*<td class="num">(\d+)</td>', page)
    assert rows == ["1", "2", "3"]
    assert 'pill-planted' in page and 'pill-missing' in page and 'pill-retired' in page
    assert "Mme Camille Morel" in page
    missing = _body(client.get("/sources/lis-rennes?status=missing"))
    assert re.findall(r'<tr>\s*<td class="num">(\d+)</td>', missing) == ["2"]


def test_source_page_paginates(client, monkeypatch):
    monkeypatch.setattr(queries, "PAGE_SIZE", 2)
    first = _body(client.get("/sources/lis-rennes"))
    assert re.findall(r'<tr>\s*<td class="num">(\d+)</td>', first) == ["1", "2"]
    assert "page 1 of 2" in first and "page=2" in first
    second = _body(client.get("/sources/lis-rennes?page=2"))
    assert re.findall(r'<tr>\s*<td class="num">(\d+)</td>', second) == ["3"]
    beyond = _body(client.get("/sources/lis-rennes?page=99"))
    assert "page 2 of 2" in beyond


def test_unknown_source_is_a_404(client):
    response = client.get("/sources/nope")
    assert response.status_code == 404 and "No source of that name" in _body(response)


def test_incidents_page(client):
    page = _body(client.get("/incidents"))
    assert page.count('<span class="pill pill-bad">open</span>') == 3
    assert page.count('<span class="pill pill-retired">closed</span>') == 5
    assert "email" in page and "pending" in page  # one delivery per message to the email sink
    assert "[CANARY]" in page  # subjects of the messages


def test_scan_pages(client, sqlite_registry):
    listing = _body(client.get("/scans"))
    assert 'href="/scans/1"' in listing and "123.5 KB" in listing
    page = _body(client.get("/scans/1"))
    assert "Source lis-rennes: 2 of 3 canaries found" in page
    assert "66.7 %" in page and "20.8 %" in page and "93.8 %" in page
    assert "lis-a 2/3" in page and "#3 (2 hit(s), smtp)" in page
    assert "EOFError: truncated" in page
    assert client.get("/scans/99").status_code == 404
    assert client.get("/scans/abc").status_code == 404


def test_nothing_reflects_unescaped_input(client):
    pages = {
        "/": _body(client.get("/")),
        "source": _body(client.get("/sources/%3Cscript%3Ealert(1)%3C/script%3E")),
        "incidents": _body(client.get("/incidents")),
        "scan": _body(client.get("/scans/1")),
        "scans": _body(client.get("/scans?page=%3Cscript%3Ealert(1)%3C/script%3E")),
        "query": _body(client.get("/sources/lis-rennes?status=%3Cscript%3Ealert(2)%3C/script%3E"
                                  "&page=%22%3E%3Cimg%20src=x%20onerror=alert(3)%3E")),
        "404": _body(client.get("/%3Cscript%3Ealert(4)%3C/script%3E")),
    }
    for name, page in pages.items():
        assert "<script" not in page and "<img" not in page, name
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["/"]
    assert "Clinique &lt;script&gt;" in pages["source"] and "batch-&lt;script&gt;" in pages["source"]
    assert "&lt;script&gt;" in pages["incidents"] and "&lt;script&gt;" in pages["scan"]
    login = _body(client.application.test_client().get("/login?next=%22%3E%3Cscript%3Ealert(5)%3C/script%3E"))
    assert "<script" not in login and 'name="next" value="/"' in login


def test_registry_outage_is_a_clear_page(client, sqlite_registry, monkeypatch, caplog):
    from canary.errors import RegistryError

    def down(*args, **kwargs):
        raise RegistryError("registry at sqlite:///x is unreachable: database is locked")

    monkeypatch.setattr(sqlite_registry, "list_sources", down)
    response = client.get("/")
    assert response.status_code == 503 and "Registry unavailable" in _body(response)
    assert "sqlite" not in _body(response)  # the details are in the log, not on the page
    assert client.get("/healthz").status_code == 200


def test_posting_to_a_page_without_login_is_refused(app):
    client = app.test_client()
    token = csrf_token(_body(client.get("/login")))
    response = client.post("/incidents", data={"csrf_token": token})
    assert response.status_code in (401, 405) and "[CANARY]" not in _body(response)


def test_security_headers(app, client):
    for response in (client.get("/"), client.get("/sources/lis-rennes"), app.test_client().get("/login"),
                     client.get("/healthz")):
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"
    css = client.get("/static/admin.css")
    assert css.status_code == 200 and css.headers["Content-Security-Policy"] == CSP
    assert "no-store" not in css.headers.get("Cache-Control", "")


# -- /healthz, /readyz, /metrics ------------------------------------------------------------


class FakeMetrics:
    def exposition(self, full=True):
        return b"# TYPE canary_hits_total counter\ncanary_hits_total 3\n", "text/plain; version=0.0.4; charset=utf-8"


def test_ops_endpoints(sqlite_registry):
    checks = {"registry": "ok", "dns": "ok"}
    app = create_admin_app(sqlite_registry, admin_config(), metrics=FakeMetrics(), readiness=lambda: checks)
    client = app.test_client()
    health = client.get("/healthz")
    assert (health.status_code, _body(health)) == (200, "ok\n")
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json == {"status": "ok", "checks": checks}
    checks["dns"] = "not answering"
    unready = client.get("/readyz")
    assert unready.status_code == 503 and unready.json["checks"]["dns"] == "not answering"
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.data.endswith(b"canary_hits_total 3\n")
    assert metrics.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"


def test_ops_endpoints_without_metrics_or_readiness(sqlite_registry):
    client = create_admin_app(sqlite_registry, admin_config()).test_client()
    assert client.get("/metrics").status_code == 404
    assert client.get("/readyz").json == {"status": "ok", "checks": {}}

    def broken():
        raise RuntimeError("boom")

    failing = create_admin_app(sqlite_registry, admin_config(), readiness=broken).test_client()
    response = failing.get("/readyz")
    assert response.status_code == 503 and "boom" not in _body(response)


# -- the chart -------------------------------------------------------------------------------


def _hit(at: datetime, classification: Classification) -> Hit:
    return Hit(id=1, canary_id=1, source="s", channel=Channel.HTTP, kind=TokenKind.URL_CODE, value="x",
               remote=None, at=at, classification=classification, evidence={})


def test_chart_counts_per_day_and_class():
    end = date(2026, 3, 14)
    hits = [_hit(datetime(2026, 3, 14, 23, 59, tzinfo=timezone.utc), Classification.HUMAN),
            _hit(datetime(2026, 3, 14, 0, 0, tzinfo=timezone.utc), Classification.HUMAN),
            _hit(datetime(2026, 3, 1, tzinfo=timezone.utc), Classification.AUTOMATED),
            _hit(datetime(2026, 2, 1, tzinfo=timezone.utc), Classification.HUMAN)]  # outside the 30 days
    counts = daily_counts(hits, end, 30)
    assert len(counts) == 30 and min(counts) == date(2026, 2, 13)
    assert counts[end][Classification.HUMAN] == 2 and counts[date(2026, 3, 1)][Classification.AUTOMATED] == 1
    svg = str(timeline_svg(hits, end=end, label=EVIL))
    assert svg.startswith("<svg") and "<script" not in svg and "&lt;script&gt;" in svg
    assert "human (2)" in svg and "automated (1)" in svg
    assert str(timeline_svg([], end=end)).count('class="bar"') == 0


# -- scan reports -----------------------------------------------------------------------------


def test_scan_report_store(registry):
    first = save_scan_report(registry, scan_report_dict(), operator="alice", at=T0)
    second = save_scan_report(registry, {**scan_report_dict(found=1), "sources": []}, operator="bob")
    assert count_scan_reports(registry) == 2
    newest, oldest = list_scan_reports(registry)
    assert (newest.id, oldest.id) == (second, first)
    assert (oldest.operator, oldest.created_at, oldest.input_files, oldest.input_bytes) == ("alice", T0, 2, 123456)
    assert (oldest.sources_found, oldest.canaries_found, newest.sources_found) == (1, 2, 0)
    assert oldest.inputs.startswith("/leaks/patients.csv, /leaks/<script>")
    stored = get_scan_report(registry, first)
    assert stored.report == scan_report_dict()
    assert get_scan_report(registry, 999) is None
    assert [r.id for r in list_scan_reports(registry, limit=1, offset=1)] == [first]
    with pytest.raises(ValueError):
        save_scan_report(registry, {"format": "other"}, operator="x")


def test_canary_scan_keeps_its_report(tmp_path, monkeypatch):
    from canary.cli.scan import scan

    monkeypatch.setenv("CANARY_SCAN_CACHE", str(tmp_path / "cache"))
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with Registry.open(url, create=True) as registry:
        world = leakgen.World(registry, seed=5)
        world.source("lis")
        world.plant("lis", 5, datetime(2024, 1, 1, tzinfo=timezone.utc))
        rng = random.Random(1)
        rows = [leakgen.canary_row(world.identity(c), rng) for c in world.by_source["lis"][:3]]
        leak = tmp_path / "leak.csv"
        leak.write_text(leakgen.to_csv(rows), encoding="utf-8")
        config = Config(path=None, registry_url=url, contacts=leakgen.contacts(), operator="rssi", raw={})
        env = SimpleNamespace(registry=registry, config=config)
        result = CliRunner().invoke(scan, [str(leak), "--json"], obj=env)
        assert result.exit_code == 1, result.output
        [summary] = list_scan_reports(registry)
        assert (summary.operator, summary.sources_found, summary.canaries_found) == ("rssi", 1, 3)
        assert summary.inputs == str(leak)
        assert get_scan_report(registry, summary.id).report == json.loads(result.output)


# -- canary admin hash-password ------------------------------------------------------------


def test_hash_password_command():
    result = CliRunner().invoke(cli, ["admin", "hash-password"], input="a long enough secret\n")
    assert result.exit_code == 0, result.output
    hashed = result.output.strip()
    assert bcrypt.checkpw(b"a long enough secret", hashed.encode())
    assert AdminConfig.from_table({"password_hash": hashed}, {}).password_hash == hashed.encode()
    short = CliRunner().invoke(cli, ["admin", "hash-password"], input="short\n")
    assert short.exit_code == 2 and "at least 12 characters" in short.output and "short\n" not in short.output
    long = CliRunner().invoke(cli, ["admin", "hash-password"], input="é" * 40 + "\n")
    assert long.exit_code == 2 and "72 bytes" in long.output
