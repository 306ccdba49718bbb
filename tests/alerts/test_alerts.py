"""Alerting: configuration, incidents/digests/flood control, content, wire formats, sinks."""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult
from freezegun import freeze_time

from support.alert_helpers import (  # noqa: F401 (fixtures)
    Capture,
    LoopbackController,
    add_source,
    email_config,
    make_identity,
    pipeline,
    plant,
    self_signed_cert,
    smtp_server,
    registry,
    registry_sqlite_url,
    registry_url,
    sqlite_registry,
)
from canary.alerts import formats
from canary.alerts.compose import Composer
from canary.alerts.config import SETTINGS, AlertsConfig, Links, SyslogConfig, WebhookConfig, parse_duration
from canary.alerts.message import Alert, DeliveryError
from canary.alerts.service import build_alerting, send_test_alert
from canary.alerts.sinks import EmailSink, SyslogSink, WebhookSink
from canary.hits.classify import SETTINGS as LISTENER_SETTINGS
from canary.hits.classify import ClassifyRules
from canary.errors import ConfigError
from canary.hits.hit import Channel, Observation
from canary.model import TokenKind
from canary.registry.hitrecords import AlertKind, AlertStatus

T0 = datetime(2025, 3, 14, 10, 0, tzinfo=timezone.utc)
DOCS = Path(__file__).resolve().parents[2] / "docs"


def hit(sink, n: int, channel=Channel.SMTP, at=None, remote="203.0.113.5", **evidence):
    identity = make_identity(n)
    kind, value = {
        Channel.SMTP: (TokenKind.EMAIL, identity.email), Channel.DNS: (TokenKind.DNS_LABEL, identity.dns_label),
        Channel.HTTP: (TokenKind.URL_CODE, identity.url_code), Channel.SMS: (TokenKind.PHONE, identity.phone),
    }[channel]
    return sink.record(Observation(channel, kind, value, remote, evidence, at))


def tick(alerter, registry):
    with registry.alert_transaction() as tx:
        return alerter.tick(tx)


def kinds(registry):
    return [(a.kind, a.status) for a in registry.list_alerts()]


# -- configuration ------------------------------------------------------------------------
def test_defaults_work_on_loopback():
    config = AlertsConfig.from_table({"email": {}, "syslog": {}})
    assert (config.window, config.digest_interval, config.max_per_hour) == \
        (timedelta(hours=24), timedelta(minutes=15), 10)
    assert (config.email.host, config.email.port, config.email.tls) == ("localhost", 25, "none")
    assert config.email.to == ("root@localhost",)
    assert (config.syslog.host, config.syslog.port, config.syslog.protocol) == ("127.0.0.1", 514, "udp")
    assert config.sink_names == ("email", "syslog")
    assert AlertsConfig.from_table(None).sink_names == ()
    assert AlertsConfig.from_table({"email": {"tls": "starttls"}}).email.port == 587
    assert AlertsConfig.from_table({"email": {"tls": "TLS"}}).email.port == 465


def test_full_configuration():
    config = AlertsConfig.from_table({
        "window": "12h", "digest_interval": 300, "max_emails_per_hour": 4, "notify_internal": False,
        "retry_initial": "10s", "retry_max": "5m", "failing_after": 3, "poll_interval": "1s",
        "cnil_url": "https://cnil.example/notify", "cert_sante_url": "https://cert.example",
        "art34_url": "https://cnil.example/art34",
        "email": {"host": "smtp.chu.example", "port": 2525, "tls": "starttls", "username": "canary",
                  "password_env": "SMTP_PW", "from": "canary@chu.example", "to": ["soc@chu.example"],
                  "timeout": "20s", "ca_file": "/etc/ssl/ca.pem"},
        "webhook": {"url_env": "HOOK_URL", "format": "slack", "timeout": 3},
        "syslog": {"protocol": "tcp", "format": "json", "facility": "authpriv", "app_name": "canary-soc"},
    })
    assert config.window == timedelta(hours=12) and config.digest_interval == timedelta(minutes=5)
    assert config.links == Links("https://cnil.example/notify", "https://cert.example", "https://cnil.example/art34")
    assert config.email.password_env == "SMTP_PW" and config.email.sender == "canary@chu.example"
    assert config.webhook == WebhookConfig(url=None, url_env="HOOK_URL", format="slack", timeout=3.0)
    assert config.syslog.facility == 10
    assert [config.retry_delay(n).total_seconds() for n in (1, 2, 3, 5, 50)] == [10, 20, 40, 160, 300]


@pytest.mark.parametrize("table,message", [
    ({"windows": "1h"}, r"unknown setting alerts.windows \(known in \[alerts\]: art34_url, "),
    ({"email": {"hots": "x"}}, r"unknown setting alerts.email.hots"),
    ({"email": {"tls": "ssl"}}, r"alerts.email.tls must be one of none, starttls, tls"),
    ({"email": {"port": 0}}, r"alerts.email.port must be a whole number from 1 to 65535"),
    ({"email": {"to": []}}, r"alerts.email.to needs at least one address"),
    ({"email": {"to": ["not an address"]}}, r"is not an email address"),
    ({"email": {"password_env": "PW"}}, r"password_env is set but alerts.email.username is not"),
    ({"email": {"username": "u", "password_env": "bad-name"}}, r"must name an environment variable"),
    ({"webhook": {}}, r"\[alerts.webhook\] needs exactly one of url or url_env"),
    ({"webhook": {"url": "ftp://x"}}, r"alerts.webhook.url must start with https://"),
    ({"webhook": {"url": "https://x", "format": "discord"}}, r"alerts.webhook.format must be one of"),
    ({"syslog": {"facility": "local9"}}, r"alerts.syslog.facility must be one of"),
    ({"window": "soon"}, r"alerts.window: 'soon' is not a duration"),
    ({"window": 0}, r"alerts.window must be longer than zero"),
    ({"max_emails_per_hour": "10"}, r"alerts.max_emails_per_hour must be a whole number"),
    ({"retry_initial": "2h"}, r"alerts.retry_max must not be shorter than alerts.retry_initial"),
    ({"email": "yes"}, r"\[alerts.email\] must be a table"),
    ({"cnil_url": "javascript:alert(1)"}, r"alerts.cnil_url must be an https:// link"),
])
def test_configuration_errors_are_one_line(table, message):
    with pytest.raises(ConfigError, match=message) as err:
        AlertsConfig.from_table(table)
    assert "\n" not in str(err.value)


def test_durations():
    assert parse_duration("1h30m", "x") == timedelta(minutes=90)
    assert parse_duration("1d", "x") == timedelta(days=1)
    assert parse_duration(2.5, "x") == timedelta(seconds=2.5)
    for bad in ("1x", "h", "", True, None, "-5m"):
        with pytest.raises(ConfigError):
            parse_duration(bad, "x")


def test_every_setting_is_documented():
    text = (DOCS / "alerts.md").read_text(encoding="utf-8")
    missing = [s.name for s in (*SETTINGS, *LISTENER_SETTINGS) if f"`{s.name}`" not in text]
    assert missing == []


# -- incidents, digests, flood control ------------------------------------------------------
def test_first_hit_alerts_at_once_later_ones_go_to_a_digest(sqlite_registry):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, alerter, _ = pipeline(registry)
    with freeze_time(T0) as clock:
        hit(sink, 1)
        assert kinds(registry) == [(AlertKind.NEW, AlertStatus.QUEUED)]
        clock.tick(timedelta(minutes=1))
        hit(sink, 1, Channel.HTTP, user_agent="Mozilla/5.0")
        hit(sink, 1, Channel.HTTP, user_agent="Mozilla/5.0")
        [incident] = registry.list_incidents()
        assert incident.hit_count == 3 and incident.next_digest_at == T0 + timedelta(minutes=15)
        clock.tick(timedelta(minutes=10))
        assert tick(alerter, registry) == 0
        assert len(registry.list_alerts()) == 1  # nothing lost: the hits wait in the incident
        clock.tick(timedelta(minutes=5))
        assert tick(alerter, registry) == 1
        assert tick(alerter, registry) == 0  # once
    new, digest = registry.list_alerts(with_payload=True)
    assert digest.kind is AlertKind.DIGEST and digest.incident_id == incident.id
    assert digest.subject.startswith("[CANARY] Suivi : base « lis-rennes » (CHU de Rennes) — canari #1, 2 nouvel(s)")
    data = digest.payload["data"]
    assert [h["id"] for h in data["hits"]] == [1, 2, 3]  # all hits so far
    assert data["new_hit_ids"] == [2, 3]
    [incident] = registry.list_incidents()
    assert incident.alerted_hit_id == 3 and incident.next_digest_at is None and incident.alert_count == 2


def test_a_more_serious_hit_sends_a_follow_up_at_once(sqlite_registry):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, alerter, _ = pipeline(registry)
    with freeze_time(T0) as clock:
        hit(sink, 1, Channel.HTTP, user_agent="Slackbot-LinkExpanding 1.0")  # automated: new
        clock.tick(timedelta(minutes=2))
        hit(sink, 1, Channel.HTTP, user_agent="curl/8.5.0")  # human: more serious
        clock.tick(timedelta(minutes=2))
        identity = make_identity(1)
        sink.record(Observation(Channel.HTTP, TokenKind.PORTAL_LOGIN, identity.portal_login,
                                "203.0.113.9", {"credential": True, "password": "Tilleul!2024"}))
        clock.tick(timedelta(minutes=2))
        hit(sink, 1, Channel.HTTP, user_agent="curl/8.5.0")  # same seriousness: digest
    alerts = registry.list_alerts()
    assert [a.kind for a in alerts] == [AlertKind.NEW, AlertKind.FOLLOW_UP, AlertKind.FOLLOW_UP]
    assert alerts[2].subject.startswith("[CANARY] Aggravation : base « lis-rennes »")
    assert "connexion au portail" in alerts[2].subject
    assert registry.list_incidents()[0].next_digest_at is not None


def test_internal_hits_alone_only_make_a_digest(sqlite_registry):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1, 2])
    rules = ClassifyRules.from_table({"internal_networks": ["10.0.0.0/8"]})
    sink, alerter, _ = pipeline(registry, rules=rules)
    quiet, quiet_alerter, _ = pipeline(registry, AlertsConfig(notify_internal=False), rules=rules)
    with freeze_time(T0) as clock:
        hit(sink, 1, remote="10.0.0.25")
        hit(quiet, 2, remote="10.0.0.25")
        assert registry.list_alerts() == []
        clock.tick(timedelta(minutes=16))
        tick(alerter, registry)
    [digest] = registry.list_alerts(with_payload=True)
    assert digest.kind is AlertKind.DIGEST
    assert digest.subject.startswith("[CANARY] Info, trafic interne : base « lis-rennes »")
    assert digest.payload["data"]["actions"] == [] and "deadline" not in digest.payload["data"]
    assert "Internal traffic only" in digest.payload["text"]
    assert len(registry.list_hits()) == 2  # the quiet one is recorded all the same


def test_a_hit_after_the_window_opens_a_new_incident(sqlite_registry):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, _alerter, _ = pipeline(registry, AlertsConfig(window=timedelta(hours=24)))
    with freeze_time(T0) as clock:
        hit(sink, 1)
        clock.tick(timedelta(hours=25))
        hit(sink, 1)
    assert [i.hit_count for i in registry.list_incidents()] == [1, 1]
    assert [a.kind for a in registry.list_alerts()] == [AlertKind.NEW, AlertKind.NEW]


def test_flood_control_warns_once_when_a_source_starts_being_held(sqlite_registry, caplog):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", range(1, 21))
    sink, _alerter, _ = pipeline(registry, AlertsConfig(max_per_hour=2))
    with freeze_time(T0) as clock, caplog.at_level("DEBUG", logger="canary.alerts"):
        for n in range(1, 21):
            hit(sink, n)
            clock.tick(timedelta(seconds=10))
    assert [a.status for a in registry.list_alerts()].count(AlertStatus.HELD) == 18
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "held" in r.getMessage()]
    assert [r.getMessage() for r in warnings] == [
        "alerts for source lis-rennes held: over 2 messages this hour; the next ones wait for the summary"]
    assert sum("held (" in r.getMessage() for r in caplog.records if r.levelname == "DEBUG") == 17


def test_flood_control_holds_then_summarises_never_drops(registry):
    add_source(registry)
    add_source(registry, "lab-b", establishment=None, alert_to=())
    plant(registry, "lis-rennes", range(1, 6))
    plant(registry, "lab-b", [9])
    sink, alerter, _ = pipeline(registry, AlertsConfig(max_per_hour=3))
    with freeze_time(T0) as clock:
        for n in range(1, 6):
            hit(sink, n)
            clock.tick(timedelta(minutes=1))
        hit(sink, 9)  # another source is not affected
        assert [(a.source, a.kind, a.status) for a in registry.list_alerts()] == [
            ("lis-rennes", AlertKind.NEW, AlertStatus.QUEUED)] * 3 + [
            ("lis-rennes", AlertKind.NEW, AlertStatus.HELD)] * 2 + [
            ("lab-b", AlertKind.NEW, AlertStatus.QUEUED)]
        hit(sink, 1, Channel.HTTP, user_agent="Mozilla/5.0")  # more of the same: a digest...
        clock.tick(timedelta(minutes=30))
        assert tick(alerter, registry) == 1  # ... held too, the hour is still full
        assert (AlertKind.DIGEST, AlertStatus.HELD) == kinds(registry)[-1]
        clock.tick(timedelta(minutes=26))  # the first message is now more than an hour old
        assert tick(alerter, registry) == 1
        assert tick(alerter, registry) == 0
    alerts = registry.list_alerts(with_payload=True)
    summary = alerts[-1]
    assert summary.kind is AlertKind.SUMMARY and summary.status is AlertStatus.QUEUED
    assert summary.subject == ("[CANARY] Résumé (limite 3/h) : base « lis-rennes » (CHU de Rennes) "
                               "— 3 accès sur 3 canari(s)")
    held = [a for a in alerts if a.status is AlertStatus.SUMMARISED]
    assert len(held) == 3 and all(a.summary_id == summary.id for a in held)
    data = summary.payload["data"]
    assert sorted(i["canary"]["id"] for i in data["incidents"]) == [1, 4, 5]
    assert sum(i["new_hits"] for i in data["incidents"]) == 3
    assert "deadline" in data and "MESSAGES RETENUS (held back: 3)" in summary.payload["text"]
    assert all(i.next_digest_at is None for i in registry.list_incidents())
    assert all(i.alerted_hit_id == max(h.id for h in registry.list_hits(incident_id=i.id))
               for i in registry.list_incidents())


# -- content ------------------------------------------------------------------------------------
@pytest.fixture
def incident_alert(sqlite_registry):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [42], batch_label="lis-rennes-2025-01")
    links = Links("https://cnil.example/notify", "https://cert.example/report", "https://cnil.example/art34")
    sink, _alerter, _ = pipeline(registry, links=links)
    with freeze_time(T0):
        hit(sink, 42, mail_from="x@attacker.example", subject="<script>alert(1)</script>\x1b[31mred",
            password="hunter2", note="<!channel> @all ]\"\\", rcpt_to=make_identity(42).email.upper())
    [record] = registry.list_alerts(with_payload=True)
    return Alert.from_payload(record.payload, alert_id=record.id)


def test_content_names_the_source_and_says_what_to_do(incident_alert):
    alert = incident_alert
    assert alert.subject == "[CANARY] Fuite probable : base « lis-rennes » (CHU de Rennes) — canari #1, email"
    assert alert.level == "high" and alert.recipients == ("dpo@chu-rennes.example",)
    data = alert.data
    assert data["source"] == {"name": "lis-rennes", "kind": "sql", "establishment": "CHU de Rennes",
                              "tenant": None, "removed": False}
    assert data["canary"]["name"] == "Mme Camille Morel" and data["canary"]["batch"] == "lis-rennes-2025-01"
    assert data["deadline"] == {"cnil_art33": "2025-03-17T10:00:00+00:00"}
    text = alert.text
    assert "Échéance CNIL (deadline)" in text and "2025-03-17 10:00 UTC (17/03 11:00 heure de Paris)" in text
    assert "des enregistrements de cette base sont entre d'autres mains" in text
    for link in ("https://cnil.example/notify", "https://cert.example/report", "https://cnil.example/art34"):
        assert link in text and f'href="{link}"' in alert.html
    assert "RGPD art. 33" in text and "RGPD art. 34" in text and "CERT Santé" in text
    assert "ACCÈS (hits so far: 1)" in text


def test_content_escapes_attacker_evidence_and_hides_identities(incident_alert):
    alert = incident_alert
    assert "<script>" not in alert.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in alert.html
    assert "\x1b" not in alert.text and "\\x1b[31mred" in alert.text
    assert "hunter2" not in json.dumps(alert.to_payload())
    assert alert.data["hits"][0]["evidence"]["rcpt_to"] == "[jeton]"
    identity = make_identity(42)
    for secret in (identity.nir, identity.email, identity.phone, identity.portal_password,
                   identity.address.line1):
        assert secret.lower() not in json.dumps(alert.to_payload(), ensure_ascii=False).lower()


def test_deadline_follows_the_first_hit_time():
    from canary.registry.hitrecords import Incident, IncidentView

    incident = Incident(id=7, canary_id=None, source="gone", opened_at=T0, closes_at=T0 + timedelta(days=1),
                        last_hit_at=T0, hit_count=0, alert_count=0, alerted_severity=-1,
                        alerted_hit_id=None, last_alert_at=None, next_digest_at=None)
    from canary.hits.hit import Classification, Hit

    hits = (Hit(1, None, "gone", Channel.DNS, TokenKind.DNS_LABEL, "h", "192.0.2.1", T0,
                Classification.HUMAN, {}),)
    with freeze_time(T0 + timedelta(hours=5)):
        alert = Composer(Links()).incident(AlertKind.NEW, IncidentView(incident, None, None, hits),
                                           datetime.now(timezone.utc))
    assert alert.data["deadline"]["cnil_art33"] == (T0 + timedelta(hours=72)).isoformat()
    assert alert.data["source"]["removed"] is True and "canari #None" in alert.subject


# -- wire formats -----------------------------------------------------------------------------
def test_webhook_shapes_escape_evidence(incident_alert):
    alert = incident_alert
    slack = formats.slack(alert)
    assert slack["text"] == alert.subject and slack["blocks"][0]["type"] == "header"
    dumped = json.dumps(slack)
    assert "<!channel>" not in dumped and "&lt;!channel&gt;" in dumped
    teams = formats.teams(alert)
    assert teams["@type"] == "MessageCard" and teams["potentialAction"][0]["targets"][0]["uri"] == \
        "https://cnil.example/notify"
    assert "<script>" not in json.dumps(teams)
    mattermost = formats.mattermost(alert)["text"]
    assert mattermost.startswith("#### [CANARY] Fuite probable") and "```" in mattermost
    document = formats.json_document(alert)
    assert document["type"] == "canary.alert" and document["id"] == alert.id
    assert document["hits"][0]["evidence"]["password"] == "***" and "facts" not in document


def test_rfc5424_line(incident_alert):
    line = formats.rfc5424(incident_alert, facility=16, app_name="canary", hostname="soc-1", procid=99)
    match = re.match(rb'^<(\d+)>1 (\S+) soc-1 canary 99 new \[canary@32473 (.*)\] \xef\xbb\xbf(.*)$', line)
    assert match, line
    assert int(match.group(1)) == 16 * 8 + 4  # local0, warning (level high)
    assert match.group(2) == b"2025-03-14T10:00:00.000000Z"
    params = match.group(3).decode()
    assert 'source="lis-rennes"' in params and 'establishment="CHU de Rennes"' in params
    assert 'cnil_deadline="2025-03-17T10:00:00+00:00"' in params and 'classification="human"' in params
    assert match.group(4).decode() == incident_alert.subject
    assert formats._sd_escape('a"b]c\\') == 'a\\"b\\]c\\\\'


# -- sinks ---------------------------------------------------------------------------------------
def test_email_sink_sends_text_and_html_to_team_and_source(smtp_server, incident_alert):
    EmailSink(email_config(smtp_server.port)).send(incident_alert)
    [message] = smtp_server.messages
    assert message["Subject"] == incident_alert.subject
    assert message["Message-ID"] == f"<canary-alert-{incident_alert.id}@soc.example>"
    assert smtp_server.envelopes == [("canary@soc.example", ["soc@soc.example", "dpo@chu-rennes.example"])]
    assert message.get_body("plain").get_content().startswith(incident_alert.subject)
    assert "&lt;script&gt;" in message.get_body("html").get_content()


class Authenticator:
    def __init__(self):
        self.logins = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret-Pw", handled=False)


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_email_sink_tls_and_login(tmp_path, mode, incident_alert):
    cert, key = self_signed_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    capture, auth = Capture(), Authenticator()
    tls_args = {"tls_context": context, "require_starttls": True} if mode == "starttls" else \
        {"ssl_context": context}
    # auth_require_tls: aiosmtpd enforces it after STARTTLS only; implicit TLS is TLS anyway.
    controller = LoopbackController(capture, hostname="127.0.0.1", port=0, authenticator=auth,
                                    auth_require_tls=mode == "starttls", **tls_args)
    controller.start()
    try:
        config = email_config(controller.port, tls=mode, username="canary", password_env="SMTP_PW",
                              ca_file=str(cert), host="localhost")
        EmailSink(config, {"SMTP_PW": "s3cret-Pw"}).send(incident_alert)
        assert len(capture.messages) == 1 and auth.logins[0] == (b"canary", b"s3cret-Pw")
        with pytest.raises(DeliveryError, match="login refused for canary") as err:
            EmailSink(config, {"SMTP_PW": "wrong-Pw"}).send(incident_alert)
        assert "wrong-Pw" not in str(err.value)
        untrusted = email_config(controller.port, tls=mode, host="localhost")
        with pytest.raises(DeliveryError, match="SSL|certificate"):
            EmailSink(untrusted).send(incident_alert)  # self-signed, not trusted without ca_file
    finally:
        controller.stop()


def test_email_sink_setup_errors():
    with pytest.raises(ConfigError, match="SMTP_PW, which is not set"):
        EmailSink(email_config(25, username="u", password_env="SMTP_PW"), {})
    with pytest.raises(ConfigError, match="needs tls"):
        EmailSink(email_config(25, host="smtp.example", username="u"), {})
    assert "s3cret" not in repr(EmailSink(email_config(25, username="u", password_env="P"), {"P": "s3cret"}))


def test_email_sink_down_is_a_delivery_error(incident_alert):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        with pytest.raises(DeliveryError, match=r"SMTP 127.0.0.1:\d+: ConnectionRefusedError"):
            EmailSink(email_config(closed.getsockname()[1])).send(incident_alert)


class HookServer:
    def __init__(self, status=200):
        self.bodies, self.paths, self.status = [], [], status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                outer.bodies.append(json.loads(self.rfile.read(length)))
                outer.paths.append(self.path)
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"no such hook" if outer.status >= 400 else b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0KEN-S3CRET"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("shape", ["json", "slack", "teams", "mattermost"])
def test_webhook_sink_posts_each_shape(shape, incident_alert):
    server = HookServer()
    try:
        WebhookSink(WebhookConfig(url=server.url, format=shape, timeout=5)).send(incident_alert)
        [body] = server.bodies
        assert body == json.loads(json.dumps(formats.WEBHOOK_FORMATS[shape](incident_alert)))
    finally:
        server.close()


def test_webhook_errors_hide_the_url_token(incident_alert):
    server = HookServer(status=404)
    try:
        sink = WebhookSink(WebhookConfig(url_env="HOOK", format="json", timeout=5), {"HOOK": server.url})
        with pytest.raises(DeliveryError, match=r"webhook http://127.0.0.1: HTTP 404 no such hook") as err:
            sink.send(incident_alert)
        assert "S3CRET" not in str(err.value)
    finally:
        server.close()
    with pytest.raises(DeliveryError, match="ConnectionError") as err:
        sink.send(incident_alert)  # server gone
    assert "S3CRET" not in str(err.value)
    with pytest.raises(ConfigError, match="HOOK, which is not set"):
        WebhookSink(WebhookConfig(url_env="HOOK"), {})


def test_syslog_sink_udp_tcp_and_file(tmp_path, incident_alert):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(5)
        SyslogSink(SyslogConfig(port=udp.getsockname()[1])).send(incident_alert)
        datagram = udp.recv(65535)
    assert datagram.startswith(b"<132>1 2025-03-14T10:00:00.000000Z ")
    with socket.socket() as tcp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(1)
        tcp.settimeout(5)
        SyslogSink(SyslogConfig(port=tcp.getsockname()[1], protocol="tcp")).send(incident_alert)
        connection, _ = tcp.accept()
        with connection:
            frame = b""
            while chunk := connection.recv(65535):
                frame += chunk
    length, _, message = frame.partition(b" ")
    assert int(length) == len(message) and message.startswith(b"<132>1 ")
    path = tmp_path / "alerts.jsonl"
    sink = SyslogSink(SyslogConfig(path=str(path)))
    sink.send(incident_alert)
    sink.send(incident_alert)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["subject"] == incident_alert.subject
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(DeliveryError, match="syslog .*missing"):
        SyslogSink(SyslogConfig(path=str(tmp_path / "missing" / "x.jsonl"))).send(incident_alert)


def test_udp_json_is_shrunk_to_fit():
    document = {"subject": "s", "hits": [{"evidence": "x" * 2000}] * 20}
    assert len(formats.shrink(document, 8192)) <= 8192
    assert json.loads(formats.shrink(document, 8192))["truncated"] is True


def test_send_test_alert_through_every_sink(smtp_server, sqlite_registry, tmp_path):
    raw = {"alerts": {
        "email": {"host": "127.0.0.1", "port": smtp_server.port, "to": ["soc@soc.example"]},
        "syslog": {"path": str(tmp_path / "siem.jsonl")},
        "webhook": {"url": "http://127.0.0.1:9/never"},
    }}
    alerting = build_alerting(sqlite_registry, raw, environ={})
    with socket.socket() as closed:  # make the webhook fail for sure
        closed.bind(("127.0.0.1", 0))
        alerting.sinks["webhook"]._url = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
        results = send_test_alert(alerting)
    assert [(r.sink, r.ok) for r in results] == [("email", True), ("webhook", False), ("syslog", True)]
    assert "ConnectionError" in results[1].error
    assert smtp_server.messages[0]["Subject"] == "[CANARY] Test d'alerte — aucune action requise"
    assert json.loads((tmp_path / "siem.jsonl").read_text())["kind"] == "test"
    with pytest.raises(ConfigError, match="no alert sink configured"):
        send_test_alert(build_alerting(sqlite_registry, {}, environ={}))


# -- library for the commands --------------------------------------------------------------------
def test_command_library(sqlite_registry):
    from canary.alerts.service import (
        alerts_overview,
        build_hit_sink,
        hit_to_dict,
        incident_to_dict,
        list_hits,
        parse_since,
    )
    from canary.errors import SourceError

    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    raw = {"alerts": {"syslog": {}}, "listener": {"internal_networks": ["10.0.0.0/8"], "dns_port": 53}}
    alerting = build_alerting(registry, raw, environ={})
    sink, index = build_hit_sink(registry, raw, alerting)
    assert index.known(TokenKind.EMAIL, make_identity(1).email)
    with freeze_time(T0):
        hit(sink, 1, remote="10.0.0.1")
        hit(sink, 1)
    assert parse_since("2025-03-14", T0) == datetime(2025, 3, 14, tzinfo=timezone.utc)
    assert parse_since("2025-03-14T11:00+01:00", T0) == T0
    assert parse_since("2h", T0) == T0 - timedelta(hours=2)
    assert parse_since(None) is None
    with pytest.raises(ConfigError, match="--since 'yesterday'"):
        parse_since("yesterday")
    hits = list_hits(registry, source="lis-rennes", since=T0)
    assert [h["classification"] for h in map(hit_to_dict, hits)] == ["internal", "human"]
    with pytest.raises(SourceError, match="unknown source 'nope'"):
        list_hits(registry, source="nope")
    overview = alerts_overview(registry, alerting.config)
    assert [a.kind for a in overview.alerts] == [AlertKind.NEW]
    assert overview.alerts[0].delivery_state == "pending"
    assert [s.sink for s in overview.sinks] == ["syslog"] and overview.failing == []
    assert incident_to_dict(overview.incidents[0])["hits"] == 2
    json.dumps([hit_to_dict(h) for h in hits])  # JSON-ready


def test_a_content_bug_never_costs_the_hit(sqlite_registry):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, alerter, _ = pipeline(registry)

    def broken(*args):
        raise KeyError("bug")

    alerter.composer.incident = broken
    hit(sink, 1)
    [stored] = registry.list_hits()
    [alert] = registry.list_alerts(with_payload=True)
    assert alert.subject == "[CANARY] Alerte : base « lis-rennes » — canari #1, incident #1 (new)"
    assert f"#{stored.id} " in alert.payload["text"] and alert.payload["data"]["plain"] is True
