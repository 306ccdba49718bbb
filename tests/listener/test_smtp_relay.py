"""Watched mailboxes at common providers: mail they forward to our relay address names the canary."""

from __future__ import annotations

import logging
import smtplib
import time
from dataclasses import replace

import pytest

from canary.contacts import Mailbox, demo_contacts
from canary.errors import ConfigError
from canary.hits.hit import Channel
from canary.hits.sink import RegistryHitSink
from canary.hits.tokenindex import TokenIndex
from canary.model import TokenKind
from listener.smtp import SmtpConfig, SmtpServer
from listener.smtprelay import MAX_ADDRESSES, MAX_HEADER_BYTES, header_block, scan_forwarded
from support.listener_helpers import FakeSink

RELAY = "relais@courriel-sante.fr"  # at one of the demo domains, which the listener serves
MAILBOX = "marie.lefort74@gmail.com"  # a canary's email: a watched mailbox forwarding to RELAY
OTHER = "paul.girard@gmail.com"  # a mailbox of ours with no canary (or anybody's)


def gmail_forwarded(original: str = MAILBOX, *, to: str | None = None, extra: bytes = b"") -> bytes:
    """A message as Gmail's automatic forwarding delivers it: X-Forwarded-To/-For prepended, the original
    Delivered-To kept (https://www.ajaxtower.jp/gmail/auto-forwarding/index3.html), headers folded."""
    to = to or original
    return (
        f"Delivered-To: {RELAY}\r\n"
        "Received: by 2002:a05:6402:3d1:b0:5a1:1c2f:7c3e with SMTP id t17csp1234567edw;\r\n"
        "        Mon, 7 Dec 2026 07:12:44 -0800 (PST)\r\n"
        "ARC-Seal: i=2; a=rsa-sha256; t=1796649164; cv=pass;\r\n"
        "        d=google.com; s=arc-20160816;\r\n"
        "        b=Zk3Jq1y0cS2dRm0bXh9VtPq+E4s1T8yZQ3Jg5o0hZkq4Y2mC0fWq7eT6vU5rN8pL\r\n"
        f"X-Forwarded-To: {RELAY}\r\n"
        f"X-Forwarded-For: {original} {RELAY}\r\n"
        f"Delivered-To: {original}\r\n"
        "Return-Path: <noreply@ameli-remboursement.example>\r\n"
        "Received: from mail.ameli-remboursement.example (mail.ameli-remboursement.example. [203.0.113.9])\r\n"
        f"        by mx.google.com with ESMTPS id 5b1f17b1804b1-40c1e3a5b1asi123456f9.2\r\n"
        f"        for <{original}>; Mon, 07 Dec 2026 07:12:43 -0800 (PST)\r\n"
        "From: Assurance Maladie <noreply@ameli-remboursement.example>\r\n"
        f"To: {to}\r\n"
        "Subject: =?utf-8?q?Votre_remboursement_est_en_attente?=\r\n"
        "Message-ID: <20261207151243.1@ameli-remboursement.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
    ).encode() + extra + b"\r\nConfirmez vos coordonnees: https://ameli-remboursement.example/rib\r\n"


@pytest.fixture
def sink():
    return FakeSink({(TokenKind.EMAIL, MAILBOX)})


def relay_config(tmp_path, **table):
    return SmtpConfig.from_table({"smtp": "127.0.0.1:0", "smtp_relay": RELAY, **table}, contacts=demo_contacts(),
                                 base_dir=tmp_path)


@pytest.fixture
def server(sink, tmp_path):
    from listener.metrics import ListenerMetrics

    with SmtpServer(sink, relay_config(tmp_path), metrics=ListenerMetrics()) as server:
        yield server


def send(server, message: bytes, rcpt: str = RELAY, mail_from: str = "SRS0=ab12=TX=gmail.com=x@gmail.com"):
    with smtplib.SMTP(*server.address, timeout=10) as client:
        client.ehlo("mail-sor-f41.google.com")
        client.mail(mail_from)
        rcpt_answer = client.rcpt(rcpt)
        data_answer = client.data(message)
    return rcpt_answer, data_answer


def canary_hits(sink):
    return [o for o in sink.observations if o.value == MAILBOX]


def relay_count(server, result):
    from prometheus_client import generate_latest

    text = generate_latest(server.metrics.registry).decode()
    line = next(ln for ln in text.splitlines()
                if ln.startswith(f'canary_smtp_relay_messages_total{{result="{result}"}}'))
    return float(line.rsplit(" ", 1)[1])


# -- configuration -------------------------------------------------------------------------


def test_the_relay_is_an_address_or_list_at_our_domains(tmp_path):
    assert relay_config(tmp_path).relays == (RELAY,)
    listed = relay_config(tmp_path, smtp_relay=["Relais@Courriel-Sante.fr", "fwd@messagerie-mel.fr"])
    assert listed.relays == (RELAY, "fwd@messagerie-mel.fr")
    assert SmtpConfig.from_table({"smtp": "127.0.0.1:0"}, contacts=demo_contacts()).relays == ()
    with pytest.raises(ConfigError, match="relais@gmail.com is not at one of contacts.email_domains"):
        relay_config(tmp_path, smtp_relay="relais@gmail.com")
    for bad in ("relais", "@courriel-sante.fr", 7, [], ["a b@courriel-sante.fr"]):
        with pytest.raises(ConfigError, match="listener.smtp_relay"):
            relay_config(tmp_path, smtp_relay=bad)


# -- a forwarded message -----------------------------------------------------------------------


def test_a_gmail_forwarded_message_is_one_hit_on_its_canary(server, sink):
    rcpt_answer, data_answer = send(server, gmail_forwarded())
    assert rcpt_answer == (250, b"2.1.5 OK") and data_answer[0] == 250
    [hit] = canary_hits(sink)  # named by X-Forwarded-For, Delivered-To, Received and To: one hit
    assert (hit.channel, hit.kind, hit.remote) == (Channel.SMTP, TokenKind.EMAIL, "127.0.0.1")
    evidence = hit.evidence
    assert evidence["relay"] == RELAY and evidence["relay_header"] == "X-Forwarded-For"
    assert evidence["mail_from"] == "SRS0=ab12=TX=gmail.com=x@gmail.com"
    assert evidence["header_from"] == "Assurance Maladie <noreply@ameli-remboursement.example>"
    assert evidence["subject"] == "Votre remboursement est en attente"
    assert evidence["links"] == ["https://ameli-remboursement.example/rib"]
    assert evidence["eml_path"].endswith(".eml")
    # The relay's own envelope hits (no canary: stored without alert) are there as for any address.
    assert {o.value for o in sink.observations} == {RELAY, MAILBOX}
    assert relay_count(server, "canary") == 1


def test_postfix_style_headers_and_to_cc_are_read_too(server, sink):
    for header in (f"X-Original-To: {MAILBOX}", f"Delivered-To: <{MAILBOX.upper()}>", f"Cc: \"M. L.\" <{MAILBOX}>"):
        sink.observations.clear()
        message = f"{header}\r\nTo: someone@else.example\r\nSubject: x\r\n\r\nbody\r\n".encode()
        send(server, message)
        [hit] = canary_hits(sink)
        assert hit.evidence["relay_header"] == header.split(":")[0]


def test_a_mailbox_reached_in_bcc_is_found_in_the_received_for_clause(server, sink):
    message = (b"Received: from mail.phish.example (mail.phish.example [203.0.113.9])\r\n"
               b"        by mx.provider.example with ESMTPS id 4Qx2\r\n"
               b"        for <" + MAILBOX.encode() + b">; Mon, 07 Dec 2026 07:12:43 +0100\r\n"
               b"Received: by relay.example; Mon, 07 Dec 2026 07:12:40 +0100\r\n"
               b"From: x@phish.example\r\nTo: undisclosed-recipients:;\r\nSubject: x\r\n\r\nbody\r\n")
    send(server, message)
    [hit] = canary_hits(sink)
    assert hit.evidence["relay_header"] == "Received"
    # "from" and "by" hosts of Received lines are not addresses: only the for clause is read
    assert scan_forwarded(b"Received: from a@b.example by c@d.example; x\r\n\r\n").found == {}


def test_a_forwarded_message_for_no_canary_is_no_canary_hit_but_is_kept_for_the_operator(server, sink):
    confirmation = (b"From: Gmail Team <forwarding-noreply@google.com>\r\nTo: " + RELAY.encode() + b"\r\n"
                    b"Subject: (#123456789) Gmail Forwarding Confirmation - Receive Mail from " + OTHER.encode()
                    + b"\r\n\r\nConfirmation code: 123456789\r\n")
    for message in (gmail_forwarded(OTHER), confirmation):
        send(server, message)
    assert canary_hits(sink) == []
    assert {o.value for o in sink.observations} == {RELAY}
    data = [o.evidence for o in sink.observations if o.evidence["stage"] == "data"]
    assert [e["subject"] for e in data] == ["Votre remboursement est en attente",
                                            f"(#123456789) Gmail Forwarding Confirmation - Receive Mail from {OTHER}"]
    assert all(e["eml_path"].endswith(".eml") for e in data)  # the operator reads the code there
    assert relay_count(server, "none") == relay_count(server, "notice") == 1  # the confirmation is Google's notice


def test_headers_of_mail_to_other_addresses_are_not_read(server, sink):
    send(server, gmail_forwarded(), rcpt="paul.girard@courriel-sante.fr")
    assert canary_hits(sink) == []


def test_relay_and_other_addresses_get_the_same_answers(server, sink):
    message = gmail_forwarded(OTHER)
    assert send(server, message, rcpt=RELAY) == send(server, message, rcpt="nobody@courriel-sante.fr")
    banner = {}
    for rcpt in (RELAY, "nobody@courriel-sante.fr"):
        with smtplib.SMTP(*server.address, timeout=10) as client:
            banner[rcpt] = (client.ehlo("x.example"), client.mail("a@b.example"), client.rcpt(rcpt),
                            client.rset(), client.vrfy(rcpt))
    assert banner[RELAY] == banner["nobody@courriel-sante.fr"]


def test_a_provider_s_own_notice_to_a_canary_mailbox_is_no_hit_but_is_kept(server, sink):
    alert = gmail_forwarded().replace(b"From: Assurance Maladie <noreply@ameli-remboursement.example>",
                                      b"From: Google <no-reply@accounts.google.com>")
    send(server, alert)  # the operator signed in to the mailbox: Google's sign-in alert, forwarded
    assert canary_hits(sink) == []
    [data] = [o.evidence for o in sink.observations if o.evidence["stage"] == "data"]
    assert data["header_from"] == "Google <no-reply@accounts.google.com>" and data["eml_path"].endswith(".eml")
    assert relay_count(server, "notice") == 1
    # a Google Docs share (phishing uses them) is not a notice: one hit
    share = gmail_forwarded().replace(b"From: Assurance Maladie <noreply@ameli-remboursement.example>",
                                      b"From: \"Dr Martin (via Google Docs)\" <drive-shares-dm-noreply@google.com>")
    send(server, share)
    assert len(canary_hits(sink)) == 1


def test_notice_senders_are_configurable(tmp_path):
    config = relay_config(tmp_path, smtp_relay_notice_senders=["Alerte@Orange.fr"])
    assert config.relay_notice_senders == {"alerte@orange.fr"}
    assert "no-reply@accounts.google.com" in relay_config(tmp_path).relay_notice_senders
    for bad in ("alerte@orange.fr", ["pas une adresse"], [3]):
        with pytest.raises(ConfigError, match="listener.smtp_relay_notice_senders must be a list of addresses"):
            relay_config(tmp_path, smtp_relay_notice_senders=bad)


# -- hostile input -----------------------------------------------------------------------------


def test_huge_headers_are_rejected_counted_and_logged_without_a_hit(server, sink, caplog):
    padding = b"".join(b"X-Junk-%d: %s\r\n" % (n, b"a" * 900) for n in range(90))  # ~80 KiB of header
    with caplog.at_level(logging.WARNING, logger="listener.smtprelay"):
        rcpt_answer, data_answer = send(server, gmail_forwarded(extra=padding))
    assert data_answer[0] == 250  # answered like any other message
    assert canary_hits(sink) == []
    assert relay_count(server, "rejected") == 1
    assert "not (all) read: too large" in caplog.text
    # the server still serves
    send(server, gmail_forwarded())
    assert len(canary_hits(sink)) == 1


def test_many_addresses_stop_the_reading_but_what_came_first_stands(server, sink):
    crowd = ",\r\n ".join(f"p{n}@example.org" for n in range(MAX_ADDRESSES + 50))  # folded: lines under 1,000
    # the canary only at the end of a huge To: not looked at
    message = f"To: {crowd}, {MAILBOX}\r\nSubject: x\r\n\r\nbody\r\n".encode()
    send(server, message)
    assert canary_hits(sink) == []
    assert relay_count(server, "rejected") == 1
    # named first by the forwarder's header: found before the crowd
    send(server, f"Delivered-To: {MAILBOX}\r\nTo: {crowd}\r\nSubject: x\r\n\r\nbody\r\n".encode())
    assert len(canary_hits(sink)) == 1


@pytest.mark.parametrize("message", [
    b"\x00\xff\xfe garbage without any header\r\n\r\n",
    b"Delivered-To\r\n: " + MAILBOX.encode() + b"\r\n\r\nbody",  # a broken field: no hit, no crash
    b"To: =?utf-8?b?////?= <\xff\xfe@@@>\r\nContent-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n",
    b"To: " + b"\r\n " .join([b"a" * 900] * 70) + b"\r\n\r\n",
    b"To: " + b"\r\n ".join([b"a@" * 450] * 50) + b"\r\n\r\n",
    b"To: a@" + b"\r\n ".join([b"-" * 900] * 60) + b"\r\n\r\n",
    b"To: " + b"\r\n ".join([b"x" * 60 + b"@" + b"b-" * 400] * 70) + b"\r\n\r\n",
    b"Subject: only headers and no end",
])
def test_malformed_messages_never_crash_and_give_no_hit(server, sink, message):
    started = time.monotonic()
    _, data_answer = send(server, message)
    assert data_answer[0] == 250 and canary_hits(sink) == []
    assert time.monotonic() - started < 5


def test_scan_reads_only_the_header_block():
    message = b"To: a@example.org\r\n\r\n" + f"Delivered-To: {MAILBOX}\r\n".encode() * 10
    assert scan_forwarded(message).found == {"a@example.org": "To"}
    assert header_block(b"To: x\n\nbody") == b"To: x"
    assert header_block(b"A: b\r\n" * (MAX_HEADER_BYTES // 6 + 10) + b"\r\n\r\nbody") is None
    folded = f"X-Forwarded-For: {MAILBOX}\r\n  {RELAY}\r\nTo: x@y.example\r\n\r\n".encode()
    assert scan_forwarded(folded).found == {MAILBOX: "X-Forwarded-For", RELAY: "X-Forwarded-For",
                                            "x@y.example": "To"}


# -- end to end on a real registry ---------------------------------------------------------------


def test_a_planted_canary_s_mailbox_is_recorded_on_that_canary(tmp_path):
    from support.plant_helpers import add_source, new_registry
    from support.sql_seeder_helpers import MAPPING, create_schema, populate_real

    from canary.planting.planter import plant

    url = f"sqlite:///{tmp_path / 'lis.db'}"
    create_schema(url)
    populate_real(url, 20)
    registry, config = new_registry(tmp_path)
    config = replace(config, contacts=replace(config.contacts, mailbox_pool=(Mailbox(MAILBOX, "Marie", "Lefort"),)))
    add_source(registry, "lis", "sql", url=url, mapping=str(MAPPING))
    [canary_id] = plant(registry, config, "lis", 1, seed=3).canary_ids
    assert registry.get_canary(canary_id).identity.email == MAILBOX
    index = TokenIndex(registry)
    index.refresh()
    contacts = replace(config.contacts, email_domains=("mel-famille.fr",))
    smtp = SmtpConfig.from_table({"smtp": "127.0.0.1:0", "smtp_relay": "relais@mel-famille.fr"}, contacts=contacts,
                                 base_dir=tmp_path)
    with SmtpServer(RegistryHitSink(registry, index), smtp) as server:
        with smtplib.SMTP(*server.address, timeout=10) as client:
            client.ehlo("mail-sor-f41.google.com")
            client.mail("SRS0=x@gmail.com")
            client.rcpt("relais@mel-famille.fr")
            client.data(gmail_forwarded().replace(RELAY.encode(), b"relais@mel-famille.fr"))
    hits = [h for h in registry.list_hits(channel=Channel.SMTP) if h.canary_id == canary_id]
    [hit] = hits
    assert (hit.source, hit.value, hit.evidence["relay"]) == ("lis", MAILBOX, "relais@mel-famille.fr")
    registry.close()
