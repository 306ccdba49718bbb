"""`canary doctor`'s network checks: the listener's front ends and the alert sinks.

Every question is harmless: an SOA query for our own zone (no canary label,
so no hit) and one for a name outside it, a GET of the portal page without a
code, an unsigned webhook POST that a healthy listener refuses with 403
before looking at it, an SMTP greeting; the alert mail server is logged in
to and left without a message, the webhook and syslog collectors are only
connected to. A wildcard bind (0.0.0.0, ::) is asked on the loopback; ``--listener
HOST`` asks another node on the configured ports.
"""

from __future__ import annotations

import http.client
import os
import smtplib
import socket
import ssl
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from canary.doctor.checks import FAIL, OK, WARN, Check, Context, Probe, first_line

DEFAULT_ADMIN_BIND = "127.0.0.1:8081"
HINT = "is canary listen running?"
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
OUTSIDE_NAME = "canary-doctor.invalid"  # a reserved name no zone of ours can hold


# -- addresses ------------------------------------------------------------------------------


def _listener_table(ctx: Context) -> dict[str, Any]:
    return dict(ctx.config.raw.get("listener") or {})


def _reachable(ctx: Context, host: str, port: int) -> tuple[str, int]:
    """Where to ask a front end bound to (host, port): --listener wins, wildcards mean loopback."""
    if ctx.listener_host:
        return ctx.listener_host, port
    return _WILDCARDS.get(host, host), port


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind(ctx: Context, key: str, default: str) -> tuple[str, int]:
    from listener.proxy import parse_bind

    host, port = parse_bind(_listener_table(ctx).get(key, default), f"listener.{key}")
    return _reachable(ctx, host, port)


# -- DNS ------------------------------------------------------------------------------------


def check_dns(ctx: Context) -> Iterator[Check]:
    from listener.dnsconfig import DnsConfig

    config = ctx.config
    zones = list(dict.fromkeys([config.contacts.dns_zone, *config.contacts.email_domains]))
    for bind in DnsConfig.from_table(_listener_table(ctx)).binds:
        host, port = _reachable(ctx, *bind)
        yield _check_dns_at(ctx, host, port, zones)


def _check_dns_at(ctx: Context, host: str, port: int, zones: list[str]) -> Check:
    from dnslib import QTYPE

    where = _where(host, port)
    if port == 0:
        return Check("dns", WARN, "listener.dns binds port 0 (a free port at each start): nothing to ask")
    serials = []
    for zone in zones:
        reply = _ask(host, port, zone, "SOA", ctx.timeout)
        if reply is None:
            return Check("dns", FAIL, f"no answer from {where} within {ctx.timeout:g} s: {HINT}")
        soa = [rr for rr in reply.rr if rr.rtype == QTYPE.SOA]
        if reply.header.rcode != 0 or not reply.header.aa or not soa:
            return Check("dns", FAIL, f"{where} gives no authoritative SOA for {zone} "
                                      f"({_RCODES.get(reply.header.rcode, reply.header.rcode)}, "
                                      f"aa={int(reply.header.aa)}): is the zone in [contacts]?")
        serials.append(f"{zone} (serial {soa[0].rdata.times[0]})")
    outside = _ask(host, port, OUTSIDE_NAME, "A", ctx.timeout)
    if outside is None:
        return Check("dns", FAIL, f"{where} did not answer a query outside its zones within {ctx.timeout:g} s")
    if outside.header.rcode != 5:
        return Check("dns", FAIL, f"{where} answers {_RCODES.get(outside.header.rcode, outside.header.rcode)} "
                                  f"for {OUTSIDE_NAME}, not REFUSED: is another server on this port?")
    return Check("dns", OK, f"{where} is authoritative for {', '.join(serials)} and refuses other names")


def _ask(host: str, port: int, name: str, qtype: str, timeout: float):
    """The parsed reply to one UDP query, or None when nothing answers in time."""
    from dnslib import DNSRecord

    query = DNSRecord.question(name, qtype)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, port, family if _is_ip(host) else 0, socket.SOCK_DGRAM)
        with socket.socket(infos[0][0], socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.connect(infos[0][4])
            sock.send(query.pack())
            while True:
                reply = DNSRecord.parse(sock.recv(4096))
                if reply.header.id == query.header.id:
                    return reply
    except Exception:  # refused, timed out, unparseable: no usable answer
        return None


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# -- HTTP: portal, webhooks, admin -------------------------------------------------------


def _request(host: str, port: int, method: str, path: str, timeout: float, *, body: bytes | None = None,
             headers: dict[str, str] | None = None, tls: bool = False) -> tuple[int, str, bytes]:
    cls = http.client.HTTPSConnection if tls else http.client.HTTPConnection
    conn = cls(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read(65536)
    finally:
        conn.close()


def _unreachable(where: str, err: BaseException, timeout: float) -> str:
    if isinstance(err, TimeoutError):
        return f"no answer from {where} within {timeout:g} s: {HINT}"
    if isinstance(err, ConnectionRefusedError):
        return f"{where} refuses connections: {HINT}"
    return f"cannot reach {where}: {type(err).__name__}: {first_line(err)}"


def check_http(ctx: Context) -> Iterator[Check]:
    from listener.http import HttpConfig
    from listener.wsgi import DEFAULT_HTTP_BIND

    host, port = _bind(ctx, "http", DEFAULT_HTTP_BIND)
    path = HttpConfig.from_table(_listener_table(ctx), contacts=ctx.config.contacts).portal_path
    where = _where(host, port)
    try:
        status, kind, _ = _request(host, port, "GET", path, ctx.timeout, headers={"Accept": "text/html"})
    except OSError as err:
        yield Check("http", FAIL, _unreachable(where, err, ctx.timeout))
        return
    if status != 200 or not kind.startswith("text/html"):
        yield Check("http", FAIL, f"{where}{path} answers {status} {kind}, not the portal page: "
                                  "is something else on this port?")
        return
    yield Check("http", OK, f"{where} serves the portal page at {path}")


def check_webhooks(ctx: Context) -> Iterator[Check]:
    from canary.hits.journal import journal_settings
    from listener.telephony import hooks_path_for
    from listener.wsgi import DEFAULT_HTTP_BIND

    raw = ctx.config.raw.get("telephony") or {}
    if raw.get("hooks_path"):
        base = str(raw["hooks_path"]).rstrip("/")
    else:  # the installation's random path, where the listener keeps it (listener/telephony.py)
        journal = journal_settings(ctx.config.raw.get("listener") or {}, ctx.config.base_dir)[0]
        base = hooks_path_for(journal.parent)
    hooks = [(provider, f"{base}/{provider}/sms") for provider, key in
             (("twilio", "auth_token_env"), ("vonage", "signature_secret_env"))
             if (raw.get(provider) or {}).get(key)]
    if not hooks:
        yield Check("webhooks", WARN, "no telephony provider configured ([telephony.twilio] or "
                                      "[telephony.vonage]): texts and calls to the pool numbers are not seen")
        return
    host, port = _bind(ctx, "http", DEFAULT_HTTP_BIND)
    yield _check_hooks(ctx, "webhooks", host, port, False, hooks)
    public = raw.get("public_base_url")
    if public and not ctx.listener_host:  # what the providers call, through the reverse proxy
        parts = urlsplit(public)
        tls = parts.scheme == "https"
        yield _check_hooks(ctx, "webhooks.public", parts.hostname or "", parts.port or (443 if tls else 80), tls,
                           [(provider, parts.path.rstrip("/") + path) for provider, path in hooks])


def _check_hooks(ctx: Context, name: str, host: str, port: int, tls: bool, hooks) -> Check:
    where = f"https://{_where(host, port)}" if tls else _where(host, port)
    answers = []
    for provider, path in hooks:
        try:
            status, content_type, _ = _request(host, port, "POST", path, ctx.timeout, body=b"", tls=tls,
                                                headers={"Content-Type": "application/x-www-form-urlencoded"})
        except (OSError, ssl.SSLError) as err:
            return Check(name, FAIL, _unreachable(where, err, ctx.timeout))
        if status == 404 or (200 <= status < 300 and "text/html" in content_type):
            # No webhook route there: the listener answers the portal page, as to any URL.
            return Check(name, FAIL, f"{where}{path} is not a webhook (the portal page answers): the listener "
                                     f"has no {provider} secret (was it started with its environment variable "
                                     "set?) or hooks_path differs")
        if 200 <= status < 300:
            return Check(name, FAIL, f"{where}{path} accepted an unsigned request ({status}): "
                                     "signatures are not checked")
        if status != 403:
            return Check(name, FAIL, f"{where}{path} answers {status} to an unsigned request, not 403")
        answers.append(provider)
    return Check(name, OK, f"{where} refuses unsigned {', '.join(answers)} webhooks (403): up and verifying")


def check_admin(ctx: Context) -> Iterator[Check]:
    # canary listen always serves the admin address (listener.admin, loopback by default).
    host, port = _bind(ctx, "admin", DEFAULT_ADMIN_BIND)
    where = _where(host, port)
    try:
        status, _, body = _request(host, port, "GET", "/healthz", ctx.timeout)
    except OSError as err:
        yield Check("admin", FAIL, _unreachable(where, err, ctx.timeout))
        return
    if status != 200:
        yield Check("admin", FAIL, f"{where}/healthz answers {status}: {first_line(body.decode('utf-8', 'replace'))}")
        return
    try:
        status, _, body = _request(host, port, "GET", "/readyz", ctx.timeout)
    except OSError as err:
        yield Check("admin", FAIL, f"{where}/healthz answers but /readyz does not: {first_line(err)}")
        return
    if status == 503:
        yield Check("admin", FAIL, f"{where}/readyz: not ready: {first_line(body.decode('utf-8', 'replace'))}")
        return
    yield Check("admin", OK, f"{where}/healthz answers 200" + (", /readyz ready" if status == 200 else ""))


def check_smtp_listener(ctx: Context) -> Iterator[Check]:
    from listener.smtp import DEFAULT_SMTP_BIND

    host, port = _bind(ctx, "smtp", DEFAULT_SMTP_BIND)
    where = _where(host, port)
    try:
        with smtplib.SMTP(host, port, timeout=ctx.timeout) as smtp:
            code, _ = smtp.ehlo("canary-doctor")
            smtp.quit()
    except (OSError, smtplib.SMTPException) as err:
        yield Check("smtp", FAIL, _unreachable(where, err, ctx.timeout)
                    if isinstance(err, OSError) else f"{where}: {type(err).__name__}: {first_line(err)}")
        return
    if code != 250:
        yield Check("smtp", FAIL, f"{where} answers EHLO with {code}")
        return
    yield Check("smtp", OK, f"{where} greets and answers EHLO")


# -- alert sinks -----------------------------------------------------------------------------


def check_alerts(ctx: Context) -> Iterator[Check]:
    from canary.alerts.config import AlertsConfig

    config = AlertsConfig.from_table(ctx.config.raw.get("alerts"))
    if not config.sink_names:
        yield Check("alerts", FAIL, "no alert sink configured ([alerts.email], [alerts.webhook] or "
                                    "[alerts.syslog]): hits are recorded but nobody is told")
        return
    for sink, check in (("email", _check_email), ("webhook", _check_webhook), ("syslog", _check_syslog)):
        sink_config = getattr(config, sink)
        if sink_config is not None:
            try:
                yield check(ctx, sink_config)
            except Exception as err:  # one sink's surprise must not hide the others
                from canary.doctor.checks import error_check

                yield error_check(f"alerts.{sink}", err)


def _check_email(ctx: Context, config) -> Check:
    name, where = "alerts.email", _where(config.host, config.port)
    password = None
    if config.password_env:
        password = ctx.environ.get(config.password_env)
        if not password:
            return Check(name, WARN, f"not checked: {config.password_env} is not set (see config)")
    from canary.alerts.sinks import EmailSink

    EmailSink(config, ctx.environ)  # the listener's own refusals (a login in clear over the network...)
    timeout = min(config.timeout, max(ctx.timeout, 5.0))
    context = ssl.create_default_context(cafile=config.ca_file) if config.tls != "none" else None
    try:
        if config.tls == "tls":
            smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=timeout)
        with smtp:
            smtp.ehlo()
            if config.tls == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if config.username:
                smtp.login(config.username, password or "")
            smtp.quit()
    except smtplib.SMTPAuthenticationError as err:
        reply = err.smtp_error.decode("utf-8", "replace") if isinstance(err.smtp_error, bytes) else str(err.smtp_error)
        return Check(name, FAIL, f"{where} refused the login for {config.username}: {err.smtp_code} {first_line(reply)}")
    except smtplib.SMTPNotSupportedError as err:
        return Check(name, FAIL, f"{where}: {first_line(err)} (check alerts.email.tls)")
    except ssl.SSLError as err:
        return Check(name, FAIL, f"{where}: TLS failed: {first_line(err)} (alerts.email.tls, ca_file)")
    except (OSError, smtplib.SMTPException) as err:
        reason = _unreachable(where, err, timeout) if isinstance(err, OSError) else \
            f"{where}: {type(err).__name__}: {first_line(err)}"
        return Check(name, FAIL, reason.replace(f": {HINT}", ""))
    login = f"logs in as {config.username}" if config.username else "accepts a connection (no login configured)"
    return Check(name, OK, f"{where} ({config.tls}) {login}; no message sent")


def _check_webhook(ctx: Context, config) -> Check:
    name = "alerts.webhook"
    url = config.url or ctx.environ.get(config.url_env or "")
    if not url:
        return Check(name, WARN, f"not checked: {config.url_env} is not set (see config)")
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if tls else 80)
    where = f"{parts.scheme}://{_where(host, port)}"  # never the path: chat services keep their token there
    try:
        with socket.create_connection((host, port), timeout=max(ctx.timeout, 5.0)) as sock:
            if tls:
                with ssl.create_default_context().wrap_socket(sock, server_hostname=host):
                    pass
    except ssl.SSLError as err:
        return Check(name, FAIL, f"{where}: TLS failed: {first_line(err)}")
    except OSError as err:
        return Check(name, FAIL, f"cannot reach {where}: {type(err).__name__}: {first_line(err)}")
    return Check(name, OK, f"{where} reachable{', TLS certificate valid' if tls else ''}; no alert posted")


def _check_syslog(ctx: Context, config) -> Check:
    name = "alerts.syslog"
    if config.path:
        path = Path(config.path)
        if path.exists():
            ok = path.is_file() and os.access(path, os.W_OK)
            return Check(name, OK, f"{path} is writable") if ok else \
                Check(name, FAIL, f"{path} is not a file this user may append to")
        if os.access(path.parent, os.W_OK | os.X_OK):
            return Check(name, OK, f"{path} will be created in a writable folder")
        return Check(name, FAIL, f"{path} does not exist and folder {path.parent} is not writable")
    where = f"{config.protocol}://{_where(config.host, config.port)}"
    try:
        if config.protocol == "tcp":
            with socket.create_connection((config.host, config.port), timeout=ctx.timeout):
                pass
            return Check(name, OK, f"{where} accepts connections")
        socket.getaddrinfo(config.host, config.port, type=socket.SOCK_DGRAM)
    except OSError as err:
        return Check(name, FAIL, f"cannot reach {where}: {type(err).__name__}: {first_line(err)}")
    return Check(name, OK, f"{where} resolves (UDP gives no answer to check delivery)")


PROBES = (
    Probe("dns", check_dns, "the DNS listener answers for the zone and refuses other names"),
    Probe("http", check_http, "the HTTP listener serves the portal page"),
    Probe("webhooks", check_webhooks, "telephony webhooks answer and refuse unsigned requests"),
    Probe("admin", check_admin, "the admin /healthz answers"),
    Probe("smtp", check_smtp_listener, "the SMTP listener greets"),
    Probe("alerts", check_alerts, "each alert sink is reachable; the SMTP login works"),
)
