"""SMTP front end: RCPT hits, no relay, evidence files, retries, junk."""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import stat

import pytest

from support.alert_helpers import self_signed_cert
from canary.contacts import demo_contacts
from canary.errors import ConfigError
from canary.hits.hit import Channel
from canary.model import TokenKind
from listener.smtp import SmtpConfig, SmtpServer, parse_message
from support.listener_helpers import FakeSink

CANARY = "jean.dupont58@courriel-sante.fr"
UNKNOWN = "marie.martin@messagerie-mel.fr"  # one of our domains, no canary

MESSAGE = (
    b"From: Service patients <noreply@phish.example>\r\n"
    b"To: jean.dupont58@courriel-sante.fr\r\n"
    b"Subject: =?utf-8?q?Votre_r=C3=A9sultat_d=27analyse?=\r\n"
    b"Message-ID: <123@phish.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/alternative; boundary=b1\r\n\r\n"
    b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Consultez https://phish.example/resultats?id=42. Merci.\r\n"
    b"--b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"<a href=3D\"https://evil.example/login\">ici</a>\r\n"
    b"--b1--\r\n"
)


@pytest.fixture
def sink():
    return FakeSink({(TokenKind.EMAIL, CANARY)})


def smtp_config(tmp_path, **table):
    return SmtpConfig.from_table({"smtp": "127.0.0.1:0", **table}, contacts=demo_contacts(), base_dir=tmp_path)


@pytest.fixture
def server(sink, tmp_path):
    with SmtpServer(sink, smtp_config(tmp_path)) as server:
        yield server


@pytest.fixture
def smtp(server):
    client = smtplib.SMTP(*server.address, timeout=10)
    client.ehlo("mail.attacker.example")
    yield client
    try:
        client.quit()
    except smtplib.SMTPServerDisconnected:
        pass


def test_rcpt_to_canary_is_a_hit_without_data(server, sink):
    with smtplib.SMTP(*server.address, timeout=10) as client:
        client.ehlo("probe.example")
        client.mail("scanner@probe.example")
        assert client.rcpt("Jean.Dupont58@Courriel-Sante.fr")[0] == 250
    # quit after RCPT: address probing
    [hit] = sink.observations
    assert (hit.channel, hit.kind, hit.value, hit.remote) == (Channel.SMTP, TokenKind.EMAIL, CANARY, "127.0.0.1")
    assert hit.evidence["stage"] == "rcpt"
    assert hit.evidence["helo"] == "probe.example"
    assert hit.evidence["mail_from"] == "scanner@probe.example"


def test_foreign_domain_is_refused_and_not_recorded(smtp, sink):
    smtp.mail("a@attacker.example")
    for address in ("victim@gmail.com", "x@sub.courriel-sante.fr", "courriel-sante.fr@evil.example",
                    "x@courriel-sante.fr.evil.example"):
        code, text = smtp.rcpt(address)
        assert code == 550 and b"5.7.1" in text
    assert sink.observations == []
    with pytest.raises(smtplib.SMTPDataError) as refused:
        smtp.data(b"Subject: relay\r\n\r\nhello\r\n")
    assert refused.value.smtp_code == 503  # no valid recipient: nothing accepted, nothing relayed


def test_unknown_address_at_our_domain_is_accepted_the_same_and_recorded(smtp, sink):
    smtp.mail("a@attacker.example")
    canary_answer = smtp.rcpt(CANARY)
    unknown_answer = smtp.rcpt(UNKNOWN.upper())
    assert canary_answer == unknown_answer == (250, b"2.1.5 OK")
    assert [o.value for o in sink.observations] == [CANARY, UNKNOWN]


def test_data_is_kept_as_a_private_eml_with_subject_and_links(smtp, sink, tmp_path):
    smtp.mail("noreply@phish.example")
    smtp.rcpt(CANARY)
    code, _ = smtp.data(MESSAGE)
    assert code == 250
    data_hits = [o for o in sink.observations if o.evidence["stage"] == "data"]
    [hit] = data_hits
    evidence = hit.evidence
    assert hit.value == CANARY
    assert evidence["subject"] == "Votre résultat d'analyse"
    assert evidence["links"] == ["https://phish.example/resultats?id=42", "https://evil.example/login"]
    assert evidence["helo"] == "mail.attacker.example"
    assert evidence["mail_from"] == "noreply@phish.example"
    assert evidence["rcpt"] == [CANARY]
    assert evidence["message_id"] == "<123@phish.example>"
    assert evidence["size"] == len(MESSAGE)
    path = evidence["eml_path"]
    assert path.startswith(str(tmp_path)) and path.endswith(".eml")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    with open(path, "rb") as kept:
        assert kept.read() == MESSAGE


def test_message_for_no_canary_is_recorded_but_not_kept(smtp, sink, tmp_path):
    smtp.mail("spam@spam.example")
    smtp.rcpt(UNKNOWN)
    assert smtp.data(b"Subject: spam\r\n\r\nbuy\r\n")[0] == 250
    data_hit = sink.observations[-1]
    assert data_hit.evidence["stage"] == "data" and "eml_path" not in data_hit.evidence
    assert "subject" not in data_hit.evidence  # full evidence is for canary recipients only
    assert list((tmp_path / "smtp-evidence").iterdir()) == []


def test_storage_failure_answers_451_so_the_sender_retries(tmp_path):
    sink = FakeSink({(TokenKind.EMAIL, CANARY)}, fail=True)
    with SmtpServer(sink, smtp_config(tmp_path)) as server:
        with smtplib.SMTP(*server.address, timeout=10) as client:
            client.ehlo("x.example")
            client.mail("a@x.example")
            code, text = client.rcpt(CANARY)
            assert code == 451 and b"4.3.0" in text
            sink.fail = False
            assert client.rcpt(CANARY)[0] == 250
            sink.fail = True
            code, _ = client.data(b"Subject: x\r\n\r\ny\r\n")
            assert code == 451


def test_too_big_message_is_refused(sink, tmp_path):
    with SmtpServer(sink, smtp_config(tmp_path, smtp_max_message=2048)) as server:
        with smtplib.SMTP(*server.address, timeout=10) as client:
            client.ehlo("x.example")
            client.mail("a@x.example")
            client.rcpt(CANARY)
            code, _ = client.data(b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 100)
            assert code == 552
    assert [o.evidence["stage"] for o in sink.observations] == ["rcpt"]


def test_recipient_limit(sink, tmp_path):
    with SmtpServer(sink, smtp_config(tmp_path, smtp_max_recipients=2)) as server:
        with smtplib.SMTP(*server.address, timeout=10) as client:
            client.ehlo("x.example")
            client.mail("a@x.example")
            assert client.rcpt(CANARY)[0] == 250
            assert client.rcpt(UNKNOWN)[0] == 250
            assert client.rcpt("third@courriel-sante.fr")[0] == 452


def test_banner_does_not_name_the_software(server):
    with socket.create_connection(server.address, timeout=5) as conn:
        banner = conn.recv(1024)
    assert banner.startswith(b"220 courriel-sante.fr ESMTP")
    assert b"Python" not in banner and b"aiosmtpd" not in banner


def test_junk_does_not_crash_the_server(server, sink):
    payloads = [b"\x00\xff\xfe\r\n", b"A" * 5000 + b"\r\n", b"HELO\r\nMAIL FROM:<<<>>>\r\n",
                b"EHLO x\r\nRCPT TO:<a@courriel-sante.fr>\r\n", b"EHLO x\r\nMAIL FROM:<a@b> SIZE=abc\r\n",
                b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<" + b"a" * 900 + b"@courriel-sante.fr>\r\nDATA\r\n\xff\r\n.\r\n",
                b"\r\n" * 50, b"STARTTLS\r\nAUTH PLAIN AGFAYg==\r\n", b"EHLO x\r\n" * 200]
    for payload in payloads:
        with socket.create_connection(server.address, timeout=5) as conn:
            conn.recv(1024)
            conn.sendall(payload + b"\r\n.\r\nQUIT\r\n")
            conn.settimeout(0.5)
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass
            conn.close()
    with smtplib.SMTP(*server.address, timeout=10) as client:
        client.ehlo("still.alive")
        client.mail("a@b.example")
        assert client.rcpt(CANARY)[0] == 250


def test_parse_message_never_raises():
    for raw in (b"", b"\xff\xfe\x00", b"Subject: =?bad?=\r\n\r\n", b"Content-Type: multipart/mixed\r\n\r\nx",
                b"Subject: " + b"x" * 100000):
        result = parse_message(raw)
        assert set(result) == {"subject", "header_from", "message_id", "links"}
    links = parse_message(b"\r\n\r\n" + b" ".join(b"http://h%d.example/" % i for i in range(200)))["links"]
    assert len(links) == 50


def test_bind_error_is_raised_by_start(sink, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = smtp_config(tmp_path, smtp=f"127.0.0.1:{taken.getsockname()[1]}")
        with pytest.raises(OSError):
            SmtpServer(sink, config).start()


def test_stop_closes_the_socket(sink, tmp_path):
    server = SmtpServer(sink, smtp_config(tmp_path))
    server.start()
    address = server.address
    server.stop()
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=1).close()


@pytest.mark.parametrize("table", [{"smtp": "nope"}, {"smtp_max_recipients": 0}, {"smtp_hostname": "a b"},
                                   {"smtp_tls_cert": "cert.pem"}, {"smtp_timeout": "1"}])
def test_bad_smtp_settings_are_config_errors(tmp_path, table):
    with pytest.raises(ConfigError):
        SmtpConfig.from_table(table, contacts=demo_contacts(), base_dir=tmp_path)


def test_starttls(sink, tmp_path):
    cert, key = self_signed_cert(tmp_path)
    config = smtp_config(tmp_path, smtp_tls_cert=cert.name, smtp_tls_key=key.name)
    with SmtpServer(sink, config) as server:
        with smtplib.SMTP(*server.address, timeout=10) as client:
            client.ehlo("x.example")
            assert client.has_extn("starttls")
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            client.starttls(context=context)
            client.ehlo("x.example")
            client.mail("a@x.example")
            assert client.rcpt(CANARY)[0] == 250
    assert sink.observations[0].evidence["tls"] is True


def raw_session(address: tuple[str, int], *commands: bytes) -> list[bytes]:
    """Send raw command lines (any bytes), return the reply to each."""
    import socket

    replies = []
    with socket.create_connection(address, timeout=10) as conn:
        reader = conn.makefile("rb")
        reader.readline()  # banner
        for command in commands:
            conn.sendall(command + b"\r\n")
            line = reader.readline()
            while line[3:4] == b"-":  # multi-line reply (EHLO)
                line = reader.readline()
            replies.append(line)
    return replies


def test_invalid_utf8_in_rcpt_is_a_malformed_address_without_traceback(server, sink, caplog):
    domain = CANARY.rpartition("@")[2].encode()
    replies = raw_session(server.address, b"EHLO x.example", b"MAIL FROM:<a@b.example> SMTPUTF8",
                          b"RCPT TO:<\xff\xfe\x80@" + domain + b">", b"RCPT TO:<nobody.at.all@" + domain + b">",
                          b"RCPT TO:<\xc3(@" + domain + b">")
    assert replies[2].startswith(b"553 5.1.3") and replies[4].startswith(b"553 5.1.3")
    assert replies[3].startswith(b"250")  # the session goes on
    assert [o.value for o in sink.observations] == [f"nobody.at.all@{domain.decode()}"]
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.levelname == "ERROR"]


def test_connections_are_capped_per_network_and_sessions_have_a_deadline(sink, tmp_path):
    import socket
    import time

    config = smtp_config(tmp_path, smtp_max_connections=50, smtp_max_per_network=3, smtp_session_limit=5)
    with SmtpServer(sink, config) as server:
        held = [socket.create_connection(server.address, timeout=10) for _ in range(3)]
        try:
            assert all(conn.makefile("rb").readline().startswith(b"220") for conn in held)
            extra = socket.create_connection(server.address, timeout=10)
            assert extra.makefile("rb").readline().startswith(b"421 4.7.0")  # a 4th from 127.0.0.0/24
            assert extra.recv(10) == b""  # and closed
            extra.close()
            started = time.monotonic()
            reader = held[0].makefile("rb")
            while time.monotonic() - started < 15:  # a NOOP every second: never idle, still cut
                held[0].sendall(b"NOOP\r\n")
                line = reader.readline()
                if not line or line.startswith(b"421"):
                    break
                time.sleep(1)
            assert line.startswith(b"421 4.4.2") and 4 <= time.monotonic() - started < 10
        finally:
            for conn in held:
                conn.close()
        time.sleep(0.2)
        again = socket.create_connection(server.address, timeout=10)  # slots released
        assert again.makefile("rb").readline().startswith(b"220")
        again.close()


def test_evidence_quotas_truncate_with_a_marker_and_other_recipients_get_no_content(tmp_path):
    import smtplib

    sink = FakeSink({(TokenKind.EMAIL, CANARY)})
    config = smtp_config(tmp_path, smtp_evidence_per_canary=30_000, smtp_evidence_max=10**9)
    body = b"Subject: phishing\r\n\r\n" + (b"x" * 76 + b"\r\n") * 256
    with SmtpServer(sink, config) as server:
        for _ in range(3):
            with smtplib.SMTP(*server.address, timeout=10) as client:
                client.sendmail("a@evil.example", [CANARY, UNKNOWN], body)
    data = [o for o in sink.observations if o.evidence.get("stage") == "data"]
    canary_hits = [o.evidence for o in data if o.value == CANARY.lower()]
    other_hits = [o.evidence for o in data if o.value != CANARY.lower()]
    assert len(canary_hits) == len(other_hits) == 3
    assert "evidence_truncated" not in canary_hits[0]
    assert canary_hits[1]["evidence_truncated"]["reason"] == "per-canary quota"
    assert 0 < canary_hits[1]["evidence_truncated"]["kept_bytes"] < canary_hits[1]["size"]
    assert canary_hits[2]["evidence_truncated"]["kept_bytes"] == 0 and canary_hits[2]["eml_path"] is None
    kept = sum(p.stat().st_size for p in (tmp_path / "smtp-evidence").iterdir())
    assert kept == 30_000
    assert all(set(e) <= {"helo", "mail_from", "tls", "stage", "size", "sha256", "rcpt_count"} for e in other_hits)


def test_low_disk_space_keeps_no_evidence_but_records_the_hit(sink, tmp_path):
    import smtplib

    config = smtp_config(tmp_path, min_free_space=2**43)  # 8 TiB free: never here
    with SmtpServer(sink, config) as server:
        with smtplib.SMTP(*server.address, timeout=10) as client:
            client.sendmail("a@evil.example", [CANARY], b"Subject: x\r\n\r\nbody\r\n")
    [hit] = [o for o in sink.observations if o.evidence.get("stage") == "data"]
    assert hit.evidence["evidence_truncated"]["reason"] == "low disk space" and hit.evidence["eml_path"] is None
    assert list((tmp_path / "smtp-evidence").iterdir()) == []
