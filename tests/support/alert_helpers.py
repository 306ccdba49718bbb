"""Shared pieces of the hit and alert tests: registries with canaries, a loopback SMTP server."""

from __future__ import annotations

import subprocess
import threading
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from canary.alerts.compose import Composer
from canary.alerts.config import AlertsConfig, EmailConfig, Links, SyslogConfig
from canary.alerts.policy import Alerter
from canary.hits.classify import ClassifyRules
from canary.hits.sink import RegistryHitSink
from canary.model import (
    Address,
    Birthplace,
    Identity,
    Placement,
    Practitioner,
    Sex,
    SourceSpec,
)
from canary.registry import Registry
from canary.hits.tokenindex import TokenIndex
from canary.tokens import tokens_of


@pytest.fixture
def registry_sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request):
    if request.param == "sqlite":
        return request.getfixturevalue("registry_sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def registry(registry_url):
    with Registry.open(registry_url, create=True) as reg:
        yield reg


def make_identity(n: int) -> Identity:
    return Identity(
        sex=Sex.FEMALE, civility="Mme", first_names=("Camille",), last_name="Morel",
        birth_name="Morel", birth_date=date(1984, 5, 7),
        birthplace=Birthplace("75115", "Paris 15e Arrondissement", "75"),
        nir=f"{2840575115000 + n:013d}45",  # unique per canary, like every token
        address=Address("12 rue des Tilleuls", "69003", "Lyon", "69383", "69"),
        phone=f"+3361234{n:04d}", phone2=None, email=f"camille.morel{n}@mail-canary.fr",
        url_code=f"k7q2x9code{n}", portal_url=f"https://portail.example.fr/p/k7q2x9code{n}",
        dns_label=f"h4x{n}", hostname=f"h4x{n}.dns.example.fr", portal_login=f"cmorel{n}",
        portal_password="Tilleul!2024", blood_group="A+", allergies=(), treatments=(),
        gp=Practitioner("Dr", "Paul", "Girard", "10001234567"),
    )


def add_source(registry: Registry, name: str = "lis-rennes",
               establishment: str | None = "CHU de Rennes",
               alert_to: tuple[str, ...] = ("dpo@chu-rennes.example",)) -> SourceSpec:
    spec = SourceSpec(name=name, seeder="sql", url_env="LIS_URL", establishment=establishment,
                      alert_to=alert_to)
    registry.add_source(spec)
    return spec


def plant(registry: Registry, source: str, numbers, batch_label: str | None = None) -> list[int]:
    """Plant one canary per number (its tokens use the number); returns their ids."""
    numbers = list(numbers)
    batch = registry.new_batch(source, batch_label, "alice", len(numbers))
    ids = []
    for n in numbers:
        identity = make_identity(n)
        record = registry.add_planned(batch, identity, tokens_of(identity))
        registry.mark_planted(record.id, Placement(rows=({"table": "patients", "key": {"id": n},
                                                          "values": {}},)))
        ids.append(record.id)
    return ids


def pipeline(registry: Registry, config: AlertsConfig | None = None, sinks=("email",),
             rules: ClassifyRules | None = None, links: Links | None = None):
    """(hit sink, alerter, index) wired like the listener."""
    config = config or AlertsConfig()
    alerter = Alerter(config, Composer(links or config.links), sinks)
    index = TokenIndex(registry)
    index.refresh()
    return RegistryHitSink(registry, index, rules or ClassifyRules(), alerter), alerter, index


# -- a loopback SMTP server ----------------------------------------------------------------


class LoopbackController(Controller):
    """aiosmtpd Controller on port 0: reads the bound port back before its self-test."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class Capture:
    """Handler keeping every accepted message; ``fail`` answers 451 instead."""

    def __init__(self) -> None:
        self.messages: list = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.fail = False
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        if self.fail:
            return "451 4.3.0 try again later"
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


@pytest.fixture
def smtp_server():
    capture = Capture()
    controller = LoopbackController(capture, hostname="127.0.0.1", port=0)
    controller.start()
    capture.port = controller.port
    try:
        yield capture
    finally:
        controller.stop()


def email_config(port: int, **changes) -> EmailConfig:
    values = dict(host="127.0.0.1", port=port, tls="none", sender="canary@soc.example",
                  to=("soc@soc.example",), timeout=5.0)
    values.update(changes)
    return EmailConfig(**values)


def syslog_file_config(path: Path) -> SyslogConfig:
    return SyslogConfig(path=str(path), format="json")


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 / localhost made with the openssl command."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def sqlite_registry(tmp_path):
    """For tests where the engine does not matter: SQLite only, fast."""
    with Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", create=True) as reg:
        yield reg
