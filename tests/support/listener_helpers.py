"""Shared pieces of the listener service tests: a config, planted sources, `canary listen` processes."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import dns.message
import dns.query
import requests

from support.alert_helpers import add_source, make_identity, plant
from canary.registry import Registry
from listener.telephony import twilio_signature

# make_identity(n) gives: email camille.morel<n>@mail-canary.fr, URL code k7q2x9code<n>,
# DNS label h4x<n>, phone +3361234<nnnn>, portal login cmorel<n> / Tilleul!2024.
EMAIL_DOMAIN = "mail-canary.fr"
ZONE = "dns.example.fr"
PORTAL = "https://portail.example.fr/p/"
TWILIO_ENV = "CANARY_TEST_TWILIO_TOKEN"
TWILIO_TOKEN = "test-twilio-auth-token"
SOURCES = {"lis-rennes": range(1, 11), "dpi-nantes": range(11, 21)}
CANARY_BIN = Path(sys.executable).with_name("canary")


def config_text(registry: str, alert_port: int, *, extra: str = "", url_env: bool = False,
                timeout: str = "5s") -> str:
    registry_line = f'url_env = "{registry}"' if url_env else f'url = "{registry}"'
    return f"""
[registry]
{registry_line}

[contacts]
email_domains = ["{EMAIL_DOMAIN}"]
dns_zone = "{ZONE}"
portal_url = "{PORTAL}"
phone_pool = ["+33612349999"]

[listener]
smtp_evidence_dir = "evidence"

[telephony]
hooks_path = "/hooks"

[alerts]
poll_interval = "0.2s"
retry_initial = "1s"
max_emails_per_hour = 1000

[alerts.email]
host = "127.0.0.1"
port = {alert_port}
from = "canary@soc.example"
to = ["soc@soc.example"]
timeout = "{timeout}"

[telephony.twilio]
auth_token_env = "{TWILIO_ENV}"
{extra}
"""


def write_config(folder: Path, registry: str, alert_port: int, **kwargs) -> Path:
    path = folder / "canary.toml"
    path.write_text(config_text(registry, alert_port, **kwargs), encoding="utf-8")
    return path


def plant_sources(registry_url: str, sources=SOURCES) -> dict[str, list[int]]:
    """Two sources, each with its canaries; returns source -> canary ids."""
    planted = {}
    with Registry.open(registry_url, create=True) as registry:
        for name, numbers in sources.items():
            add_source(registry, name, establishment=f"Etablissement {name}", alert_to=())
            planted[name] = plant(registry, name, numbers)
    return planted


def identity(n: int):
    return make_identity(n)


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


class FakeSink:
    """A HitSink that knows ``tokens`` ((kind, value) pairs) and keeps what it observes;
    ``fail``: every observe raises, like a registry that is down."""

    def __init__(self, tokens=(), fail=False):
        self.tokens = set(tokens)
        self.observations = []
        self.fail = fail
        self._lock = threading.Lock()

    def known(self, kind, value):
        return (kind, value) in self.tokens

    def observe(self, observation):
        if self.fail:
            raise RuntimeError("database is down")
        with self._lock:
            self.observations.append(observation)


# -- clients for each channel, on 127.0.0.1 ----------------------------------------------


def dns_query(port: int, name: str, tcp: bool = False):
    query = dns.message.make_query(name, "A")
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, "127.0.0.1", port=port, timeout=3)


def http_get(port: int, path: str, host: str = "portail.example.fr", **kwargs):
    return requests.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host}, timeout=5, **kwargs)


def send_mail(port: int, recipient: str, subject: str = "Vos résultats") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
        smtp.sendmail("phisher@evil.example", [recipient],
                      f"From: phisher@evil.example\r\nTo: {recipient}\r\nSubject: {subject}\r\n\r\n"
                      "https://evil.example/login\r\n".encode())


def twilio_sms(port: int, to: str, token: str = TWILIO_TOKEN, body: str = "Vos résultats: https://x.example"):
    """A Twilio SMS webhook signed with ``token`` (another token: a forged signature)."""
    url = f"http://127.0.0.1:{port}/hooks/twilio/sms"
    params = {"MessageSid": "SM1", "From": "+33757000101", "To": to, "Body": body}
    return requests.post(url, data=params, headers={"X-Twilio-Signature": twilio_signature(token, url, params)},
                         timeout=5)


# -- `canary listen` as a real process --------------------------------------------------


class ListenProcess:
    def __init__(self, config: Path, ports_file: Path, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.config = config
        self.ports_file = ports_file
        self.stderr_path = ports_file.with_suffix(".stderr")
        environ = {**os.environ, "CANARY_CONFIG": str(config), TWILIO_ENV: TWILIO_TOKEN, **(env or {})}
        command = [str(CANARY_BIN), "listen", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0",
                   "--smtp", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--ports-file", str(ports_file), *args]
        self._stderr = self.stderr_path.open("ab")
        self.proc = subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL, stderr=self._stderr,
                                     cwd=config.parent)
        self.ports: dict[str, int] = {}

    def wait_ready(self, timeout: float = 20.0) -> dict[str, int]:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"canary listen exited with {self.proc.returncode}: {self.stderr()[-2000:]}")
            return self.ports_file.exists()

        wait_for(ready, timeout, what="the ports file")
        self.ports = json.loads(self.ports_file.read_text(encoding="utf-8"))
        return self.ports

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def terminate(self, timeout: float = 20.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._stderr.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._stderr.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._stderr.close()
