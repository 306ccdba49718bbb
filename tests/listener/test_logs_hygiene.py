"""No secret and no patient-like data in the listener's logs.

A ListenerService runs with the JSON logs of ``canary listen`` captured. Hits
come in through DNS (UDP and TCP), the portal (a canary link, a canary host
name, a canary login with its password), SMTP (a phishing mail naming the
patient) and a signed Twilio SMS webhook (plus a forged one); alerts fail on
an SMTP login (the password comes from the environment); then the registry
fails under every front end, with a database error quoting the token. Every
log line is then searched for any token value, identity field, password and
secret: none may appear. Ids, source names, channels and addresses may.
"""

from __future__ import annotations

import io
import json
import logging
import smtplib
import tomllib

import pytest
import requests
import sqlalchemy as sa

from support.alert_helpers import make_identity, smtp_server  # noqa: F401 (smtp_server: a fixture)
from canary.config import parse_config
from canary.hits.sink import RegistryHitSink
from canary.registry import Registry
from canary.errors import error_text, scrub
from listener.logs import JsonFormatter, configure_json_logging, remove_json_logging
from listener.service import ListenerService
from support.listener_helpers import (
    TWILIO_ENV, TWILIO_TOKEN, config_text, dns_query, http_get, plant_sources, twilio_sms, wait_for,
)

SMTP_PASSWORD_ENV = "CANARY_TEST_SMTP_PASSWORD"
SMTP_PASSWORD = "s3cr3t-Relay-Pa55"
SMS_TEXT = "Bonjour Camille Morel, vos resultats sont disponibles"
NUMBERS = range(1, 9)


def forbidden_values() -> set[str]:
    """Every token and identity field of the canaries used, and the secrets."""
    values = {SMTP_PASSWORD, TWILIO_TOKEN, SMS_TEXT, "Tilleul", "Camille", "Morel", "rue des Tilleuls"}
    for n in NUMBERS:
        identity = make_identity(n)
        values |= {identity.dns_label, identity.hostname, identity.url_code, identity.email,
                   identity.phone, identity.phone[3:], identity.portal_login, identity.nir}
    return values


@pytest.fixture
def logged(tmp_path, smtp_server):  # noqa: F811
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    plant_sources(url, {"lis-rennes": NUMBERS})
    text = config_text(url, smtp_server.port).replace(
        "[telephony.twilio]", f'username = "soc-relay"\npassword_env = "{SMTP_PASSWORD_ENV}"\n\n[telephony.twilio]')
    config = parse_config(tomllib.loads(text), path=tmp_path / "canary.toml")
    stream = io.StringIO()
    handler = configure_json_logging(stream, logging.INFO)
    try:
        with Registry.open(url) as registry:
            service = ListenerService(config, registry, binds={"dns": "127.0.0.1:0", "http": "127.0.0.1:0",
                                                               "smtp": "127.0.0.1:0",
                                         "admin": "127.0.0.1:0"},
                                      environ={TWILIO_ENV: TWILIO_TOKEN, SMTP_PASSWORD_ENV: SMTP_PASSWORD})
            with service:
                yield service, stream
    finally:
        remove_json_logging(handler)


def mail(port: int, n: int) -> None:
    identity = make_identity(n)
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
        smtp.sendmail("phisher@evil.example", [identity.email], (
            f"From: phisher@evil.example\r\nTo: {identity.email}\r\nSubject: Camille Morel, vos resultats\r\n\r\n"
            f"Bonjour Camille Morel ({identity.nir}, {identity.phone}): https://evil.example/login\r\n").encode())


def test_no_token_identity_or_secret_in_any_log_line(logged, monkeypatch):
    service, stream = logged
    ports = service.ports()
    one, two, three, four, five = (make_identity(n) for n in range(1, 6))
    dns_query(ports["dns"], one.hostname)
    dns_query(ports["dns"], two.hostname, tcp=True)
    http_get(ports["http"], f"/p/{three.url_code}", host=three.hostname)
    requests.post(f"http://127.0.0.1:{ports['http']}/p/", data={"identifiant": four.portal_login,
                                                               "motdepasse": four.portal_password}, timeout=5)
    mail(ports["smtp"], 5)
    assert twilio_sms(ports["http"], make_identity(6).phone, body=SMS_TEXT).status_code == 200
    assert twilio_sms(ports["http"], make_identity(6).phone, token="forged", body=SMS_TEXT).status_code == 403
    # Every channel's hit stored (and logged) before the registry is made to fail: a count alone let the
    # SMS hit, journaled last, reach the failing registry once.
    wait_for(lambda: {"dns", "http", "smtp", "sms"} <= {h.channel.value for h in service.registry.list_hits()}
             and len(service.registry.list_hits()) >= 7, what="seven stored hits, one of each channel")
    wait_for(lambda: "via email failed" in stream.getvalue(), what="a failed alert delivery logged")

    # The registry now fails under every front end, with the error a driver gives: it quotes the values.
    # (``_store`` stores one observation inside the transaction, for ``record`` and for the journal's
    # batches alike.)
    def failing(self, tx, observation, *args):
        raise sa.exc.IntegrityError("INSERT INTO hits (value, evidence) VALUES (?, ?)",
                                    (observation.value, json.dumps(dict(observation.evidence))),
                                    Exception("UNIQUE constraint failed: hits.value"))

    monkeypatch.setattr(RegistryHitSink, "_store", failing)
    monkeypatch.setattr("canary.hits.journal.RETRY_FIRST", 0.001)
    seven = make_identity(7)
    dns_query(ports["dns"], seven.hostname)
    http_get(ports["http"], f"/p/{seven.url_code}")
    mail(ports["smtp"], 7)  # journaled: accepted, then refused by the "registry" and set aside
    assert twilio_sms(ports["http"], seven.phone, body=SMS_TEXT).status_code == 200
    wait_for(lambda: service.journal.rejected >= 4, what="four hits set aside by the journal")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    text = "\n".join(json.dumps(entry, ensure_ascii=False) for entry in lines)
    # The paths that log were all taken: hits of each channel, failed deliveries, storage failures.
    for needle in ("via dns", "via http", "via smtp", "via sms", "credential-use", "via email failed",
                   "hit journal: an entry could not be stored", "[parameters: (hidden)]"):
        assert needle in text, needle
    leaks = sorted(value for value in forbidden_values() if value.lower() in text.lower())
    assert leaks == [], leaks


def test_the_formatter_blanks_values_quoted_by_database_errors():
    error = sa.exc.IntegrityError("INSERT INTO tokens (kind, value) VALUES (?, ?)",
                                  ("email", "camille.morel1@mail-canary.fr"),
                                  Exception('duplicate key\nDETAIL:  Key (kind, value)=(email, '
                                            'camille.morel1@mail-canary.fr) already exists.'))
    try:
        raise error
    except sa.exc.IntegrityError:
        record = logging.getLogger("test").makeRecord("test", logging.ERROR, __file__, 1, "failed: %s",
                                                      (str(error),), exc_info=__import__("sys").exc_info())
    line = JsonFormatter().format(record)
    assert "camille" not in line and "[parameters: (hidden)]" in line and "DETAIL: (hidden)" in line
    assert scrub("plain text") == "plain text"
    assert error_text(error) == "IntegrityError"  # a driver error: its class only
    from canary.errors import RegistryError

    assert error_text(RegistryError("cannot open registry at sqlite:///r.db: locked")).startswith("cannot open")


def test_repeated_errors_are_one_line_per_interval_with_a_count():
    import io

    from listener.logs import RepeatFilter

    now = [100.0]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RepeatFilter(interval=10, clock=lambda: now[0]))
    logger = logging.getLogger("test.repeats")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        for n in range(5000):
            logger.error("SMTP session error: %s from %s", "ValueError", f"198.51.100.{n % 250}")
        logger.warning("hit #%d: a warning per event", 1)
        logger.warning("hit #%d: a warning per event", 2)
        logger.warning("hit #%d: a warning per event", 2)
        logger.info("info passes %d", 1)
        logger.info("info passes %d", 2)
        now[0] += 11
        logger.error("SMTP session error: %s from %s", "ValueError", "198.51.100.9")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines == ["SMTP session error: ValueError from 198.51.100.0", "hit #1: a warning per event",
                     "hit #2: a warning per event", "info passes 1",
                     "info passes 2", "SMTP session error: ValueError from 198.51.100.9 (and 4999 more like it "
                     "in the last 10 s)"]
