"""deploy/: systemd units and timers, the container image, the compose example, their configs.

Every command line shipped under deploy/ is parsed by the real click tree of
``canary.cli.main.cli``, so a renamed command or option breaks this test rather
than a production timer; every canary.toml shipped there goes through the
config loader and the listener's own setting checks.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from canary.alerts.config import AlertsConfig
from canary.cli.main import cli
from canary.config import load_config
from listener.admin.config import AdminConfig, admin_bind
from listener.dnsconfig import DnsConfig
from listener.http import HttpConfig
from listener.proxy import parse_bind
from listener.smtp import SmtpConfig
from listener.telephony import TelephonyConfig
from listener.tls import HttpsServeConfig
from listener.wsgi import HttpServeConfig
from support.needs import missing

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = DEPLOY / "systemd"
COMPOSE = DEPLOY / "compose.yaml"
SECRETS_EXAMPLE = DEPLOY / "compose" / "secrets.env.example"
CONFIG = "/etc/canary/canary.toml"
STATE_DIR = "/var/lib/canary"


def read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, empty_lines_in_values=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    return parser


def units(suffix: str) -> dict[str, configparser.ConfigParser]:
    return {p.name: read_unit(p) for p in sorted(UNITS.glob(f"*.{suffix}"))}


def resolve(argv: list[str]) -> tuple[tuple[str, ...], dict[str, object]]:
    """Parse ``canary ARGV`` with the real CLI: (command path, every parameter seen on the way).

    An unknown command or option, a missing value or a stray argument raises click.UsageError.
    """
    ctx = cli.make_context("canary", list(argv))
    command: click.Command = cli
    path: list[str] = []
    params: dict[str, object] = dict(ctx.params)
    while isinstance(command, click.Group):
        rest = [*_protected(ctx), *ctx.args]
        if not rest:
            raise click.UsageError(f"`canary {' '.join(path)}` needs a subcommand", ctx)
        name, sub, args = command.resolve_command(ctx, rest)
        assert name is not None and sub is not None
        ctx = sub.make_context(name, args, parent=ctx)
        command = sub
        path.append(name)
        params.update(ctx.params)
    return tuple(path), params


def _protected(ctx: click.Context) -> list[str]:
    # Click >= 8.2 keeps a group's subcommand words in _protected_args; older ones in protected_args.
    protected = ctx.__dict__.get("_protected_args")
    return list(protected if protected is not None else ctx.protected_args)


def canary_argv(exec_start: str) -> list[str]:
    argv = shlex.split(exec_start)
    assert argv[0] == "/opt/canary/venv/bin/canary", exec_start
    return argv[1:]


def seconds(value: str) -> float:
    """A systemd time span such as "90s", "2min", "1h 30min", "45min"."""
    factors = {"h": 3600, "min": 60, "s": 1, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+)\s*(h|min|ms|s)?", value):
        total += int(number) * factors[unit or "s"]
    return total


# -- the resolver itself ---------------------------------------------------------------


def test_resolver_accepts_real_commands_and_refuses_renamed_ones():
    assert resolve(["--config", CONFIG, "drip", "run", "--json"]) == (
        ("drip", "run"), {"config_path": CONFIG, "as_json": True})
    for bad in (["--conf", CONFIG, "listen"], ["drip", "go"], ["verify", "a", "b"], ["hibp"], ["listen", "--dns"]):
        with pytest.raises(click.UsageError):
            resolve(bad)


# -- systemd ----------------------------------------------------------------------------


def test_every_service_runs_a_real_canary_command_with_the_shared_config():
    commands = {}
    for name, unit in units("service").items():
        argv = canary_argv(unit["Service"]["ExecStart"])
        path, params = resolve(argv)
        assert params["config_path"] == CONFIG, name
        commands[name] = path
    assert commands == {"canary-listener.service": ("listen",), "canary-verify.service": ("verify",),
                        "canary-drip.service": ("drip", "run"), "canary-hibp.service": ("hibp", "sync"),
                        "canary-doctor.service": ("doctor",)}


def test_every_unit_runs_as_canary_with_secrets_from_the_env_file_and_a_sandbox():
    for name, unit in units("service").items():
        service = unit["Service"]
        assert service["User"] == service["Group"] == "canary", name
        assert service["EnvironmentFile"] == "/etc/canary/secrets.env", name
        assert service["StateDirectory"] == "canary" and service["WorkingDirectory"] == STATE_DIR, name
        assert service["UMask"] == "0077", name
        for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "RestrictSUIDSGID"):
            assert service[key] == "true", (name, key)
        assert service["ProtectSystem"] == "strict", name
        assert set(service["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}, name
        assert "SystemCallFilter" in service and service["SystemCallArchitectures"] == "native", name
        assert "network-online.target" in unit["Unit"]["After"].split(), name
        text = (UNITS / name).read_text(encoding="utf-8")
        assert not re.search(r"(?im)^(Environment=.*(password|token|secret|key)|User=root)", text), name


def test_listener_binds_low_ports_with_one_capability_and_drains_on_stop():
    unit = units("service")["canary-listener.service"]
    service = unit["Service"]
    assert service["User"] != "root"
    assert service["AmbientCapabilities"] == service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert service["Type"] == "simple" and service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    # The drain: HTTP requests (5 s), then the outbox's delivery in progress (SMTP timeout, 30 s by default).
    assert seconds(service["TimeoutStopSec"]) >= 60
    assert STATE_DIR in service["ReadWritePaths"].split()
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_timer_jobs_are_oneshots_without_any_capability():
    for name, unit in units("service").items():
        if name == "canary-listener.service":
            continue
        service = unit["Service"]
        assert service["Type"] == "oneshot", name
        assert service["CapabilityBoundingSet"] == "", name
        assert "AmbientCapabilities" not in service, name
        assert seconds(service["TimeoutStartSec"]) >= 15 * 60, name
        assert "Install" not in unit, name  # started by its timer, never at boot


def test_each_timer_starts_its_own_oneshot_service_and_catches_up_after_downtime():
    services = units("service")
    timers = units("timer")
    assert set(timers) == {"canary-verify.timer", "canary-drip.timer", "canary-hibp.timer", "canary-doctor.timer"}
    for name, unit in timers.items():
        timer = unit["Timer"]
        target = timer.get("Unit", name.replace(".timer", ".service"))
        assert target == name.replace(".timer", ".service") and target in services, name
        assert services[target]["Service"]["Type"] == "oneshot"
        assert timer["Persistent"] == "true", name
        assert seconds(timer["RandomizedDelaySec"]) > 0, name
        assert timer["OnCalendar"].endswith("Europe/Paris"), name
        assert unit["Install"]["WantedBy"] == "timers.target", name
    # Drip plants only in working hours (Monday to Friday, 8:00-18:00 Paris), every 10 minutes.
    assert timers["canary-drip.timer"]["Timer"]["OnCalendar"] == "Mon..Fri *-*-* 08..17:00/10:00 Europe/Paris"
    services_with_timers = {n.replace(".timer", ".service") for n in timers}
    assert services_with_timers == set(services) - {"canary-listener.service"}


def test_calendar_expressions_are_valid():
    if shutil.which("systemd-analyze") is None:
        missing("systemd", "systemd-analyze is not installed")
    for name, unit in units("timer").items():
        result = subprocess.run(["systemd-analyze", "calendar", unit["Timer"]["OnCalendar"]],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, (name, result.stderr)


def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    if shutil.which("systemd-analyze") is None:
        missing("systemd", "systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at this checkout's canary instead of /opt.
    binary = str(Path(sys.executable).with_name("canary"))
    for path in UNITS.glob("*.*"):
        if path.suffix in (".service", ".timer"):
            text = path.read_text(encoding="utf-8").replace("/opt/canary/venv/bin/canary", binary)
            (tmp_path / path.name).write_text(text, encoding="utf-8")
    names = sorted(str(p) for p in tmp_path.iterdir())
    result = subprocess.run(["systemd-analyze", "verify", *names], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    # An unknown key or a bad value is only a warning naming the unit (exit code 0): none allowed.
    problems = [line for line in result.stderr.splitlines() if "canary-" in line]
    assert result.returncode == 0 and problems == [], result.stderr


def test_sysusers_and_tmpfiles_declare_the_user_and_modes():
    sysusers = [line.split() for line in (DEPLOY / "sysusers.d" / "canary.conf").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert sysusers[0][:2] == ["u", "canary"] and sysusers[0][-2:] == [STATE_DIR, "/usr/sbin/nologin"]
    entries = {fields[1]: fields for fields in (line.split() for line in
               (DEPLOY / "tmpfiles.d" / "canary.conf").read_text().splitlines()
               if line.strip() and not line.startswith("#"))}
    assert entries["/etc/canary/secrets.env"][2:5] == ["0600", "root", "root"]
    assert entries["/etc/canary"][2:5] == ["0750", "root", "canary"]
    assert entries[STATE_DIR][2:5] == ["0700", "canary", "canary"]


# -- the canary.toml files shipped under deploy/ ------------------------------------------


def example_environ() -> dict[str, str]:
    """Every variable of secrets.env.example, given a value (the example holds none)."""
    names = [line.partition("=")[0] for line in SECRETS_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    environ = {name: f"test-value-for-{name.lower()}-0123456789abcdef0123456789" for name in names}
    environ["CANARY_REGISTRY_URL"] = "postgresql+psycopg://canary:secret@postgres:5432/canary"
    return environ


def env_names(table: object) -> set[str]:
    """Every variable a config names through its ``*_env`` settings."""
    if not isinstance(table, dict):
        return set()
    found = {v for k, v in table.items() if k.endswith("_env") and isinstance(v, str)}
    for value in table.values():
        found |= env_names(value)
    return found


def check_config(path: Path, environ: dict[str, str]):
    """The loader's checks, then every check `canary listen` makes before it binds."""
    config = load_config(path, environ)
    raw = config.raw
    table = dict(raw.get("listener") or {})
    DnsConfig.from_table(table)
    HttpConfig.from_table(table, contacts=config.contacts)
    HttpServeConfig.from_table(table)
    https = HttpsServeConfig.from_table(table, config.base_dir)
    SmtpConfig.from_table(table, contacts=config.contacts, base_dir=config.base_dir)
    TelephonyConfig.from_table(raw.get("telephony") or {}, environ)
    AlertsConfig.from_table(raw.get("alerts"))
    AdminConfig.from_table(raw.get("admin"), environ)
    admin_bind(table)
    return config, table, https


CONFIGS = sorted(DEPLOY.rglob("*.toml"))


def test_configs_are_shipped():
    assert {p.relative_to(DEPLOY).as_posix() for p in CONFIGS} >= {
        "systemd/canary.toml", "compose/node-a.toml", "compose/node-b.toml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_shipped_config_passes_every_check(path):
    environ = example_environ()
    config, table, https = check_config(path, environ)
    assert env_names(dict(config.raw)) <= set(environ), "a *_env setting names a variable missing " \
        "from secrets.env.example"
    assert config.registry_url.startswith("postgresql+psycopg://")  # one registry shared by every node
    assert https is not None and https.cert_file.is_absolute() and https.key_file.is_absolute()
    # Everything the listener writes is under the state folder (/etc is read-only for it).
    assert SmtpConfig.from_table(table, contacts=config.contacts,
                                 base_dir=config.base_dir).evidence_dir.is_relative_to(STATE_DIR)


def test_host_config_binds_the_privileged_ports():
    _, table, https = check_config(UNITS / "canary.toml", example_environ())
    ports = {parse_bind(table[key], key)[1] for key in ("smtp", "http")} | {https.port}
    ports |= {parse_bind(v, "dns")[1] for v in table["dns"]}
    assert ports == {53, 25, 80, 443}


def test_secrets_example_holds_no_secret():
    settings = [line for line in SECRETS_EXAMPLE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert settings
    for line in settings:
        name, _, value = line.partition("=")
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name) and value == "", line


# -- container image and compose ------------------------------------------------------------


def containerfile_json(instruction: str) -> list[str]:
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    match = re.search(rf"^{instruction} (\[.*\])\s*$", text, re.MULTILINE)
    assert match, instruction
    return json.loads(match.group(1))


def test_image_runs_canary_as_a_user_with_a_healthcheck_on_the_admin_port():
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim AS build$", text, re.MULTILINE)
    assert re.search(r"^USER canary$", text, re.MULTILINE)
    assert not re.search(r"^RUN .*setcap", text, re.MULTILINE)  # ports above 1024 inside: no capability
    assert containerfile_json("ENTRYPOINT") == ["canary"]
    assert resolve(containerfile_json("CMD"))[0] == ("listen",)
    health = re.search(r"HEALTHCHECK .*\n\s*CMD (\[.*\])", text)
    assert health and "http://127.0.0.1:8081/healthz" in json.loads(health.group(1))[-1]


def test_image_builds_the_scanners_c_helper_into_the_wheel():
    """setup.py declares the scanner's C helper: the build stage needs it and a compiler
    (the runtime stage gets the built wheel, no compiler)."""
    build, runtime = (DEPLOY / "Containerfile").read_text(encoding="utf-8").split("\nFROM python:3.11-slim\n")
    assert re.search(r"^COPY pyproject\.toml setup\.py README\.md \./$", build, re.MULTILINE)
    assert re.search(r"apt-get install -y --no-install-recommends gcc libc6-dev", build)
    assert "gcc" not in runtime


def compose_lines() -> list[str]:
    return COMPOSE.read_text(encoding="utf-8").splitlines()


def compose_services() -> dict[str, list[str]]:
    """Service name -> its lines (the file has no YAML library to read it: a two-space layout)."""
    services: dict[str, list[str]] = {}
    current = None
    inside = False
    for line in compose_lines():
        if re.match(r"^\S", line):
            inside = line.startswith("services:")
            current = None
            continue
        match = re.match(r"^  ([a-z][a-z0-9-]*):\s*$", line)
        if inside and match:
            current = match.group(1)
            services[current] = []
        elif inside and current:
            services[current].append(line)
    return services


def test_every_compose_command_is_a_real_canary_command():
    commands = {}
    for name, lines in compose_services().items():
        for line in lines:
            match = re.match(r"^\s+command: (\[.*\])\s*$", line)
            if match:
                commands[name] = resolve(json.loads(match.group(1)))[0]
    assert commands == {"registry": ("init",), "listener-a": ("listen",), "listener-b": ("listen",)}


def test_compose_layout_postgres_two_nodes_and_ports():
    services = compose_services()
    assert set(services) == {"postgres", "registry", "listener-a", "listener-b"}
    postgres = "\n".join(services["postgres"])
    assert "image: postgres:16" in postgres and "healthcheck:" in postgres and "pg_isready" in postgres
    assert "pgdata:/var/lib/postgresql/data" in postgres and "ports:" not in postgres
    for node, host_ip in (("a", "192.0.2.10"), ("b", "198.51.100.11")):
        lines = "\n".join(services[f"listener-{node}"])
        assert f"./compose/node-{node}.toml:/etc/canary/canary.toml:ro" in lines
        assert "condition: service_completed_successfully" in lines
        published = re.findall(r'- "([\d.]+):(\d+):(\d+)/(tcp|udp)"', lines)
        public = {(int(h), int(c), proto) for ip, h, c, proto in published if ip == host_ip}
        admin = [(ip, int(c)) for ip, h, c, proto in published if ip != host_ip]
        # The container ports are the ones node-X.toml binds.
        _, table, https = check_config(DEPLOY / "compose" / f"node-{node}.toml", example_environ())
        dns, smtp, http = (parse_bind(table[k], k)[1] for k in ("dns", "smtp", "http"))
        assert public == {(53, dns, "udp"), (53, dns, "tcp"), (25, smtp, "tcp"), (80, http, "tcp"),
                          (443, https.port, "tcp")}
        assert min(dns, smtp, http, https.port) > 1024  # no capability needed inside the container
        assert admin == [("127.0.0.1", admin_bind(table)[1])]  # the dashboard on the host's loopback only


def test_compose_files_it_mounts_are_shipped():
    text = COMPOSE.read_text(encoding="utf-8")
    sources = set(re.findall(r"- (\./compose/[\w.-]+\.toml):", text))
    env_files = set(re.findall(r"env_file: (\S+)", text))
    assert sources and env_files  # the patterns still match the compose file
    for source in sources:
        assert (DEPLOY / source).is_file(), source
    for env_file in env_files:
        assert (DEPLOY / f"{env_file}.example").is_file(), env_file
    assert "dockerfile: deploy/Containerfile" in text and "context: .." in text
