"""A signed Twilio webhook replayed (by an attacker who caught it, or a provider retry) is one hit."""

from __future__ import annotations

from canary.config import load_config
from canary.registry import Registry
from listener.service import ListenerService
from support.listener_helpers import TWILIO_ENV, TWILIO_TOKEN, plant_sources, twilio_sms, wait_for, write_config
from support.alert_helpers import make_identity

LOOPBACK = {"dns": "127.0.0.1:0", "http": "127.0.0.1:0", "smtp": "127.0.0.1:0", "admin": "127.0.0.1:0"}


def test_a_replayed_signed_sms_is_stored_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    plant_sources(url, {"lis-rennes": range(1, 3)})
    config = load_config(write_config(tmp_path, url, 9))
    with Registry.open(url) as registry:
        service = ListenerService(config, registry, binds=LOOPBACK, environ={TWILIO_ENV: TWILIO_TOKEN})
        with service:
            port = service.ports()["http"]
            for _ in range(3):
                assert twilio_sms(port, make_identity(1).phone).status_code == 200
            assert twilio_sms(port, make_identity(2).phone).status_code == 200  # another message: its own hit
            assert service.journal.wait_idle(20)
            hits = registry.list_hits()
            assert sorted(h.value for h in hits) == sorted([make_identity(1).phone, make_identity(2).phone])
            assert service.journal.duplicates == 2
