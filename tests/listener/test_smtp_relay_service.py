"""The whole listener on loopback: mail a watched mailbox forwards to the relay raises the canary's alert."""

from __future__ import annotations

import re
import smtplib
import time
import tomllib

import pytest

from canary.config import parse_config
from canary.hits.hit import Channel
from canary.planting.planter import plant
from canary.registry import Registry
from listener.service import ListenerService
from support.alert_helpers import Capture, LoopbackController
from support.listener_helpers import EMAIL_DOMAIN, TWILIO_ENV, TWILIO_TOKEN, config_text, wait_for
from support.plant_helpers import add_source
from support.sql_seeder_helpers import MAPPING, create_schema, populate_real

MAILBOXES = ("marie.lefort74@gmail.com", "paul.girard@gmail.com")
RELAY = f"courrier@{EMAIL_DOMAIN}"
SUBJECT_CANARY = re.compile(r"canari #(\d+)")


@pytest.fixture
def alert_inbox():
    capture = Capture()
    controller = LoopbackController(capture, hostname="127.0.0.1", port=0)
    controller.start()
    capture.port = controller.port
    yield capture
    controller.stop()


def forwarded(original: str) -> bytes:
    """As Gmail's automatic forwarding delivers it (see tests/listener/test_smtp_relay.py)."""
    return (f"X-Forwarded-To: {RELAY}\r\nX-Forwarded-For: {original} {RELAY}\r\nDelivered-To: {original}\r\n"
            "From: Assurance Maladie <noreply@ameli-remboursement.example>\r\n"
            f"To: {original}\r\nSubject: Votre remboursement\r\n\r\nhttps://ameli-remboursement.example/rib\r\n"
            ).encode()


def test_a_forwarded_message_raises_one_alert_naming_the_canary_and_its_source(tmp_path, alert_inbox):
    (tmp_path / "mailboxes.txt").write_text(f"{MAILBOXES[0]} Marie Lefort\n{MAILBOXES[1]} Paul Girard\n",
                                            encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    text = config_text(url, alert_inbox.port)
    text = text.replace('phone_pool = ["+33612349999"]', 'phone_pool = ["+33612349999"]\n'
                        'mailbox_pool_file = "mailboxes.txt"')
    text = text.replace('smtp_evidence_dir = "evidence"', f'smtp_evidence_dir = "evidence"\nsmtp_relay = "{RELAY}"')
    config = parse_config(tomllib.loads(text), path=tmp_path / "canary.toml")
    target = f"sqlite:///{tmp_path / 'lis.db'}"
    create_schema(target)
    populate_real(target, 20)
    with Registry.open(url, create=True) as registry:
        add_source(registry, "lis-rennes", "sql", url=target, mapping=str(MAPPING))
        [canary_id] = plant(registry, config, "lis-rennes", 1, seed=4).canary_ids
        mailbox = registry.get_canary(canary_id).identity.email
        [other] = set(MAILBOXES) - {mailbox}  # the pool's other mailbox: no canary holds it
        service = ListenerService(config, registry, environ={TWILIO_ENV: TWILIO_TOKEN},
                                  binds={"dns": "127.0.0.1:0", "http": "127.0.0.1:0", "smtp": "127.0.0.1:0",
                                         "admin": "127.0.0.1:0"})
        service.start()
        try:
            port = service.ports()["smtp"]
            with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
                client.sendmail("SRS0=ab12=TX=gmail.com=x@gmail.com", [RELAY], forwarded(mailbox))
                client.sendmail("SRS0=cd34=TX=gmail.com=y@gmail.com", [RELAY], forwarded(other))

            def alerts():
                with alert_inbox.lock:
                    return [m for m in alert_inbox.messages if (found := SUBJECT_CANARY.search(str(m["Subject"])))
                            and int(found.group(1)) == canary_id]

            wait_for(alerts, 10, what="the canary's alert")
            time.sleep(1.0)  # five alert poll rounds more: nothing else may come
            [alert] = alerts()
            assert "lis-rennes" in alert.get_body(("plain",)).get_content()
            with alert_inbox.lock:
                assert len(alert_inbox.messages) == 1  # the mailbox of no canary raised nothing
        finally:
            service.stop()
        hits = [h for h in registry.list_hits(channel=Channel.SMTP) if h.canary_id == canary_id]
        assert [(h.value, h.evidence["relay"], h.evidence["relay_header"]) for h in hits] == \
            [(mailbox, RELAY, "X-Forwarded-For")]
