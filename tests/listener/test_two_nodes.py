"""The documented two-node layout (docs/two-nodes.md), run as its walkthrough says.

The two example configurations of docs/examples/two-nodes/ are used as they
ship, on one fresh PostgreSQL registry: only their ports become 0 (node A
keeps 127.0.0.1, node B 127.0.0.2) and the alert mail goes to a catcher in
the test process. The walkthrough's own commands initialise the registry,
create the EHR, add the source and plant; then two `canary listen` processes
both answer DNS with authority, one canary looked up on both nodes and
another one used on node B raise exactly one alert each, and each node's
admin address answers /healthz.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
import requests

from support.alert_helpers import Capture, smtp_server  # noqa: F401 (smtp_server: a fixture, the alert inbox)
from canary.registry import Registry
from support.listener_helpers import CANARY_BIN, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "two-nodes"
NODES = {"a": "127.0.0.1", "b": "127.0.0.2"}
BINDS = ("dns", "http", "smtp", "admin")
SOURCE = "ehr-clinique"
DASHBOARD_PASSWORD = "correct horse battery staple"
SUBJECT_CANARY = re.compile(r"canari #(\d+)")


def walkthrough_folder(folder: Path, alert_port: int) -> None:
    """Copy the example folder; ports become 0 and the alert mail goes to ``alert_port``."""
    shutil.copytree(EXAMPLE, folder, dirs_exist_ok=True)
    for node, host in NODES.items():
        path = folder / f"node-{node}" / "canary.toml"
        text = path.read_text(encoding="utf-8")
        # Every bind of [listener] is on the node's own address: exactly dns, http, smtp, admin.
        binds = re.findall(r'^(\w+) = "(127\.0\.0\.\d+):\d+"$', text, flags=re.M)
        assert binds == [(name, host) for name in BINDS], binds
        text = re.sub(r'^(\w+) = "(127\.0\.0\.\d+):\d+"$', r'\1 = "\2:0"', text, flags=re.M)
        text, count = re.subn(r"^port = 8025$", f"port = {alert_port}", text, flags=re.M)
        assert count == 1
        path.write_text(text, encoding="utf-8")


def canary_cmd(folder: Path, env: dict[str, str], *args: str) -> str:
    """A command of the admin terminal: CANARY_CONFIG is node A's file, as docs/two-nodes.md sets it."""
    env = {**env, "CANARY_CONFIG": str(folder / "node-a" / "canary.toml")}
    result = subprocess.run([str(CANARY_BIN), *args], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"canary {' '.join(args)}: {result.stderr}"
    return result.stdout


class Node:
    """`canary --config node-X/canary.toml listen --ports-file X.json`, as docs/two-nodes.md starts it."""

    def __init__(self, folder: Path, name: str, env: dict[str, str]) -> None:
        self.host = NODES[name]
        self.ports_file = folder / f"{name}.json"
        self.stderr_path = folder / f"{name}.stderr"
        with self.stderr_path.open("wb") as stderr:
            command = [str(CANARY_BIN), "--config", f"node-{name}/canary.toml", "listen",
                       "--ports-file", str(self.ports_file)]
            self.proc = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        self.ports: dict[str, int] = {}

    def wait_ready(self) -> dict[str, int]:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"node {self.host} exited {self.proc.returncode}: "
                                     f"{self.stderr_path.read_text(errors='replace')[-2000:]}")
            return self.ports_file.exists()

        wait_for(ready, 20, what=f"the ports file of {self.host}")
        self.ports = json.loads(self.ports_file.read_text(encoding="utf-8"))
        return self.ports

    def query(self, name: str, rdtype: str = "A") -> dns.message.Message:
        query = dns.message.make_query(name, rdtype)
        query.flags &= ~dns.flags.RD  # dig +norec: what a resolver asks an authoritative server
        return dns.query.udp(query, self.host, port=self.ports["dns"], timeout=3)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise


def stop_quietly(node: Node) -> int | None:
    """SIGTERM's exit code, or None when the node had to be killed (the other one is stopped all the same)."""
    try:
        return node.stop()
    except subprocess.TimeoutExpired:
        return None


def dashboard(base: str, password: str, path: str) -> str:
    """Log in through the form (CSRF token, session cookie) and return the page at ``path``.

    The session cookie is Secure (a browser keeps it on http://127.0.0.x, requests does
    not send it over http), so it is carried by hand.
    """
    form = requests.get(f"{base}/login", timeout=5)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    cookie = form.headers["Set-Cookie"].split(";", 1)[0]
    logged_in = requests.post(f"{base}/login", data={"csrf_token": token, "next": "", "username": "admin",
                                                     "password": password},
                              headers={"Cookie": cookie}, allow_redirects=False, timeout=10)
    assert logged_in.status_code in (302, 303), logged_in.text[:500]
    cookie = logged_in.headers["Set-Cookie"].split(";", 1)[0]
    page = requests.get(f"{base}{path}", headers={"Cookie": cookie}, allow_redirects=False, timeout=5)
    assert page.status_code == 200, page.status_code
    return page.text


def answers(reply: dns.message.Message) -> list[str]:
    return sorted(item.to_text() for rrset in reply.answer for item in rrset)


def subjects_by_canary(inbox: Capture) -> Counter:
    with inbox.lock:
        return Counter(int(SUBJECT_CANARY.search(str(m["Subject"])).group(1)) for m in inbox.messages)


@pytest.mark.postgres
def test_two_nodes_on_one_postgresql_registry_answer_dns_and_alert_once(tmp_path, postgres_url, smtp_server):
    walkthrough_folder(tmp_path, smtp_server.port)
    env = {**os.environ, "CANARY_REGISTRY_URL": postgres_url}
    env.pop("CANARY_CONFIG", None)

    # Steps of docs/two-nodes.md: registry schema, the EHR, its source, a first batch.
    canary_cmd(tmp_path, env, "init", "node-a")
    assert "up to date" in canary_cmd(tmp_path, env, "upgrade")
    with sqlite3.connect(tmp_path / "ehr.db") as ehr:
        ehr.executescript((tmp_path / "ehr.sql").read_text(encoding="utf-8"))
    canary_cmd(tmp_path, env, "source", "add", SOURCE, "--seeder", "sql",
               "--url", f"sqlite:///{tmp_path / 'ehr.db'}", "--mapping", "ehr-mapping.toml",
               "--establishment", "Clinique du Parc")
    canary_cmd(tmp_path, env, "plant", SOURCE, "--count", "3")
    canary_cmd(tmp_path, env, "verify")  # exit 0: every canary is in place
    with Registry.open(postgres_url) as registry:
        looked_up, clicked = registry.list_canaries(source=SOURCE)[:2]
    # Step 3: the dashboard password, one hash appended to both files' [admin] table.
    env["CANARY_ADMIN_SESSION_KEY"] = "k" * 64
    password_hash = subprocess.run([str(CANARY_BIN), "admin", "hash-password"], input=f"{DASHBOARD_PASSWORD}\n",
                                   capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    for node in NODES:
        with (tmp_path / f"node-{node}" / "canary.toml").open("a", encoding="utf-8") as config:
            config.write(f'password_hash = "{password_hash}"\n')

    nodes = {name: Node(tmp_path, name, env) for name in NODES}
    try:
        for node in nodes.values():
            assert set(BINDS) <= set(node.wait_ready())
        zone = "espace-resultats.test"
        soa = {}
        for name, node in nodes.items():
            # Both name servers answer with authority, the same NS set and SOA serial...
            for rdtype in ("SOA", "NS"):
                reply = node.query(zone, rdtype)
                assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA, reply
            assert answers(node.query(zone, "NS")) == [f"ns1.{zone}.", f"ns2.{zone}."]
            soa[name] = answers(node.query(zone, "SOA"))
            # ...and each gives its own address for a canary hostname (the same canary on both).
            reply = node.query(looked_up.identity.hostname)
            assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
            assert answers(reply) == [node.host]
            refused = node.query("www.example.com")
            assert refused.rcode() == dns.rcode.REFUSED and not refused.answer
        assert soa["a"] == soa["b"]

        # A canary's portal link opened on node B.
        code = clicked.identity.url_code
        page = requests.get(f"http://{nodes['b'].host}:{nodes['b'].ports['http']}/dossier/{code}",
                            headers={"Host": "acces.espace-resultats.test"}, timeout=5)
        assert page.status_code == 200

        # One alert per canary used, whichever node saw it and whichever node sent it: the
        # second look-up of the same name (by the other node) joins the first one's incident.
        wanted = Counter({looked_up.id: 1, clicked.id: 1})
        wait_for(lambda: subjects_by_canary(smtp_server) == wanted, 15, what="two alert emails")
        time.sleep(2.5)  # more than two rounds of both nodes' outbox workers: nothing else comes
        assert subjects_by_canary(smtp_server) == wanted
        with Registry.open(postgres_url) as registry:
            hits = registry.list_hits(source=SOURCE)
            alerts = registry.list_alerts()
        assert Counter(h.canary_id for h in hits) == Counter({looked_up.id: 2, clicked.id: 1})
        assert [a.delivery_state for a in alerts] == ["sent", "sent"]

        # Each node's admin address answers its health check (docs/metrics.md), and its
        # dashboard, after a login, shows the source with its canaries and the incidents.
        for node in nodes.values():
            admin = f"http://{node.host}:{node.ports['admin']}"
            assert requests.get(f"{admin}/healthz", timeout=5).status_code == 200
            page = dashboard(admin, DASHBOARD_PASSWORD, "/")
            assert SOURCE in page and "Clinique du Parc" in page
            incidents = dashboard(admin, DASHBOARD_PASSWORD, "/incidents")
            assert incidents.count('<span class="pill pill-bad">open</span>') == 2  # one per canary used
    finally:
        codes = [stop_quietly(node) for node in nodes.values()]
    assert codes == [0, 0]
    assert not any((tmp_path / f"{name}.json").exists() for name in NODES)


# -- the example files and the pages that use them, without a database ------------------

PER_NODE = {"dns", "http", "smtp", "admin", "public_ip"}


def test_the_example_nodes_differ_only_in_their_own_addresses():
    from canary.config import load_config

    environ = {"CANARY_REGISTRY_URL": "postgresql+psycopg://canary@127.0.0.1:5432/canary_registry"}
    configs = {name: load_config(EXAMPLE / f"node-{name}" / "canary.toml", environ=environ) for name in NODES}
    for name, host in NODES.items():
        listener = configs[name].raw["listener"]
        ports = {key: listener[key].rpartition(":")[2] for key in BINDS}
        assert ports == {"dns": "5353", "http": "8080", "smtp": "2525", "admin": "8081"}
        assert {listener[key].rpartition(":")[0] for key in BINDS} == {host} == {listener["public_ip"]}
        assert listener["dns_nameservers"] == [f"ns1.espace-resultats.test={NODES['a']}",
                                               f"ns2.espace-resultats.test={NODES['b']}"]
    shared = [{**config.raw, "listener": {k: v for k, v in config.raw["listener"].items() if k not in PER_NODE}}
              for config in configs.values()]
    assert shared[0] == shared[1]
    assert configs["a"].contacts == configs["b"].contacts and not configs["a"].contacts.demo
    assert configs["a"].raw["registry"] == {"url_env": "CANARY_REGISTRY_URL"}  # no password in the files


GUIDE_PAGES = ("setup.md", "two-nodes.md", "operations.md")
# `canary` at the start of a shell line, after `$(`, `;`, `&&` or ExecStart=, maybe as .../bin/canary,
# or deployment.md's `canary-admin` helper (canary with /etc/canary's configuration and secrets).
COMMAND = re.compile(r"(?:^|\$\(|;|&&|ExecStart=)\s*(?:\S*/bin/)?canary(?:-admin)?\s+(.+)")
END_OF_COMMAND = re.compile(r"\s(?:\||>|&&|#)|[);']")


def documented_commands(text: str) -> list[list[str]]:
    """The arguments of every `canary` command in the shell, console and ini blocks of a page."""
    commands, block, pending = [], None, ""
    for line in text.splitlines():
        fence = line.strip()
        if fence.startswith("```"):
            block = None if block is not None else fence[3:]
            continue
        if block not in ("sh", "bash", "console", "ini"):
            continue
        line = pending + re.sub(r"^\s*\$ ", "", line)
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        for found in COMMAND.finditer(line):
            args = END_OF_COMMAND.split(found.group(1), maxsplit=1)[0]
            commands.append(shlex.split(args))
    return commands


def parse_only(args: list[str]) -> None:
    """Parse ``canary ARGS`` with the real CLI, running nothing: unknown commands or options raise."""
    import click

    from canary.cli.main import cli

    ctx = cli.make_context("canary", list(args))
    command: click.Command = cli
    while isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return
        name, command, rest = command.resolve_command(ctx, rest)
        try:
            ctx = command.make_context(name, rest, parent=ctx)
        except click.BadParameter as err:  # a file of the example that does not exist here
            if not (isinstance(err.param.type, click.Path) and err.param.type.exists):
                raise


@pytest.mark.parametrize("page", GUIDE_PAGES)
def test_every_canary_command_of_the_guides_parses(page):
    commands = documented_commands((EXAMPLE.parent.parent / page).read_text(encoding="utf-8"))
    assert len(commands) >= 5  # the extraction works: every page runs several
    for args in commands:
        try:
            parse_only(args)
        except Exception as err:  # click's usage errors, named with the line that caused them
            raise AssertionError(f"{page}: canary {' '.join(args)}: {err}") from None
