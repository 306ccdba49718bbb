"""HTTP front end: the patient-portal page behind every canary link and hostname.

A canary URL code in any path segment or query value, a canary label in the
Host header, or a canary portal login POSTed to the form is a hit. Whatever
the request, the answer is the same French patient-portal login page (or a
1x1 image when an image is asked for): the same bytes and headers for known
and unknown codes, no input ever written into it, no route ever revealed.

``create_app(sink, config)`` builds the Flask app; serving it is
listener/wsgi.py's job, and the telephony webhooks (listener/telephony.py)
register into the same app.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import secrets
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol
from urllib.parse import urlsplit

from flask import Flask, Request, Response, current_app, request
from werkzeug.exceptions import HTTPException

from canary.config import Setting
from canary.contacts import ContactPoints
from canary.errors import ConfigError
from canary.hits.hit import Channel, HitSink, Observation, cap_evidence
from canary.model import TokenKind
from listener.proxy import TrustedProxies
from listener.telephony import HOOKS_BLUEPRINT, TelephonyConfig, register_hooks
from listener.wsgi import int_setting

if TYPE_CHECKING:
    from listener.metrics import ListenerMetrics

log = logging.getLogger(__name__)

EXTENSION = "canary.http"
METRICS_EXTENSION = "canary.metrics"
FAILED = "canary.failed"  # set in the WSGI environ when handling failed: counted as an error
DEFAULT_PORTAL_NAME = "Espace patient"
MAX_SEGMENTS = 32  # path segments and query values looked at per request
MAX_TOKEN_CHARS = 256
IMAGE_SUFFIXES = (".gif", ".png", ".jpg", ".jpeg", ".ico", ".webp", ".svg", ".bmp")
LOGIN_FIELDS = ("identifiant", "login", "username", "user", "email", "courriel")
PASSWORD_FIELDS = ("motdepasse", "mot_de_passe", "password", "passwd", "pwd", "pass")
ERROR_MESSAGE = '<p class="erreur" role="alert">Identifiant ou mot de passe incorrect.</p>\n'

SETTINGS: tuple[Setting, ...] = (
    Setting("listener.http_max_body", 65536,
            "Largest HTTP request body accepted (bytes); a larger one gets the portal page unread."),
    Setting("listener.portal_name", DEFAULT_PORTAL_NAME,
            "Name shown in the title and header of the portal page (e.g. \"Mon espace santé\")."),
)

# 1x1 transparent images: same bytes for every request.
GIF_1X1 = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
           b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
PNG_1X1 = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
           b"\x1f\x15\xc4\x89\x00\x00\x00\x0bIDATx\x9cc`\x00\x02\x00\x00\x05\x00\x01z^\xab?\x00\x00"
           b"\x00\x00IEND\xaeB`\x82")


class PasswordCheck(Protocol):
    """Whether a POSTed password is the canary's whose login it is: True, False, or None when
    it cannot be told. Called for every login, canary or not, on the response path: it must
    cost the same whatever the login (listener/credentials.py's CredentialChecker does)."""

    def check(self, login: str, password: str) -> bool | None: ...


PasswordLookup = Callable[[str], "str | None"]  # login -> the canary's password, or None (tests)


class _LookupCheck:
    """A PasswordCheck over a plain ``login -> password or None`` callable (a dict's ``get`` in
    tests): both sides hashed and compared in constant time; a lookup that raises is None."""

    def __init__(self, lookup: PasswordLookup) -> None:
        self._lookup = lookup
        self._key = secrets.token_bytes(32)

    def check(self, login: str, password: str) -> bool | None:
        try:
            expected = self._lookup(login)
        except Exception:  # the registry is down: still a hit, outcome unknown
            log.error("could not check a portal password")
            return None
        given = hmac.new(self._key, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        wanted = hmac.new(self._key, (expected or "").encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        return hmac.compare_digest(wanted, given) if expected is not None else None


@dataclass(frozen=True, slots=True)
class HttpConfig:
    dns_zone: str  # canary hostnames are <label>.<dns_zone>
    portal_path: str = "/"  # path of contacts.portal_url, ending with "/"
    proxies: TrustedProxies = field(default_factory=TrustedProxies)
    max_body: int = 65536
    portal_name: str = DEFAULT_PORTAL_NAME

    @classmethod
    def from_table(cls, table: Mapping[str, Any], *, contacts: ContactPoints) -> "HttpConfig":
        """From the ``[listener]`` table and the ``[contacts]`` we watch."""
        max_body = int_setting(table, "http_max_body", 65536, 1024, 2**26)  # the same check as the server's
        name = table.get("portal_name", DEFAULT_PORTAL_NAME)
        if not isinstance(name, str) or not name.strip() or len(name) > 80:
            raise ConfigError("listener.portal_name must be a non-empty string of at most 80 characters")
        path = urlsplit(contacts.portal_url).path or "/"
        return cls(dns_zone=contacts.dns_zone.lower().strip("."),
                   portal_path=path if path.endswith("/") else path.rpartition("/")[0] + "/",
                   proxies=TrustedProxies.from_table(table), max_body=max_body, portal_name=name.strip())


@dataclass(frozen=True, slots=True)
class _Answer:
    body: bytes
    headers: tuple[tuple[str, str], ...]

    def response(self, status: int = 200) -> Response:
        return Response(self.body, status=status, headers=list(self.headers))


@dataclass(frozen=True, slots=True)
class _Portal:
    """Per-app state, in ``app.extensions``."""

    sink: HitSink
    config: HttpConfig
    credentials: PasswordCheck | None
    defer: "Callable[[Callable[[], None]], bool] | None"  # None: record before answering (tests)
    page: _Answer
    failed_login: _Answer
    gif: _Answer
    png: _Answer
    zone_suffix: str


def create_app(sink: HitSink, config: HttpConfig, *, credentials: "PasswordCheck | PasswordLookup | None" = None,
               telephony: "TelephonyConfig | None" = None, metrics: "ListenerMetrics | None" = None,
               defer: "Callable[[Callable[[], None]], bool] | None" = None) -> Flask:
    """The public HTTP app; ``telephony`` adds the provider webhooks, ``metrics`` counts requests.
    A health check or /metrics does not belong here: this app is what attackers see (they
    are on the admin address). ``credentials`` checks every POSTed login's password (a
    PasswordCheck, or a plain ``login -> password`` lookup). With a journaling sink
    (canary/hits/journal.py) the hit is journaled before answering, and a request without a
    canary token does the same work, its line going to the journal's decoy file; ``defer`` (listener.deferred.Deferred.submit)
    is for a sink that stores before returning: the hit is stored after answering."""
    app = Flask(__name__, static_folder=None, template_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body
    app.config["MAX_FORM_MEMORY_SIZE"] = config.max_body
    app.extensions[EXTENSION] = _build_portal(sink, config, credentials, defer)
    app.before_request(_portal_view)
    app.register_error_handler(Exception, _on_error)
    if metrics is not None:
        app.extensions[METRICS_EXTENSION] = metrics
        app.after_request(_count_request)
    if telephony is not None:
        register_hooks(app, sink, telephony, config.proxies, metrics=metrics, disguise=_portal_answer)
    return app


def _portal_answer() -> Response:
    """What the portal answers this request when it carries no token: a refused webhook
    (bad signature) gets it too, so the hook path looks like any other page."""
    portal: _Portal = current_app.extensions[EXTENSION]
    return (portal.failed_login if request.method == "POST" else portal.page).response()


# -- the page -------------------------------------------------------------


def _build_portal(sink: HitSink, config: HttpConfig, credentials: "PasswordCheck | PasswordLookup | None",
                  defer: "Callable[[Callable[[], None]], bool] | None" = None) -> _Portal:
    folder = resources.files("listener") / "templates"
    style = (folder / "portal.css").read_text(encoding="utf-8").strip()
    template = Template((folder / "portal.html").read_text(encoding="utf-8"))
    values = {"name": html.escape(config.portal_name), "style": style,
              "base": html.escape(config.portal_path, quote=True)}
    style_hash = base64.b64encode(hashlib.sha256(style.encode("utf-8")).digest()).decode("ascii")
    common = (
        ("Cache-Control", "no-store"),
        ("Content-Security-Policy", f"default-src 'self'; style-src 'sha256-{style_hash}'; img-src 'self' data:; "
                                   "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Vary", "Accept"),
    )

    def answer(body: bytes, content_type: str) -> _Answer:
        return _Answer(body, (("Content-Type", content_type),) + common)

    html_type = "text/html; charset=utf-8"
    return _Portal(
        sink=sink, config=config, defer=defer,
        credentials=(credentials if credentials is None or hasattr(credentials, "check")
                     else _LookupCheck(credentials)),
        page=answer(template.substitute(values, message="").encode("utf-8"), html_type),
        failed_login=answer(template.substitute(values, message=ERROR_MESSAGE).encode("utf-8"), html_type),
        gif=answer(GIF_1X1, "image/gif"),
        png=answer(PNG_1X1, "image/png"),
        zone_suffix="." + config.dns_zone,
    )


def _portal_view() -> Response | None:
    """Runs before routing for every request: everything but the webhooks is the portal."""
    req: Request = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
    if req.blueprint == HOOKS_BLUEPRINT and req.url_rule is not None:
        return None
    portal: _Portal = current_app.extensions[EXTENSION]
    found = _tokens_in_request(portal, req)
    answer = portal.page
    decoy: _Found | None = None
    if req.method == "POST":
        answer = portal.failed_login
        login = _login_attempt(portal, req)
        if login is not None:
            if login[1]:
                found.append(login[0])
            else:
                decoy = login[0]
    elif _wants_image(req):
        answer = portal.png if req.path.lower().endswith(".png") else portal.gif
    if found:
        _record(portal, req, found)
    elif decoy is not None:
        _record(portal, req, [decoy], decoy=True)
    elif req.path.startswith(portal.config.portal_path) and len(req.path) > len(portal.config.portal_path):
        # An unknown code under the portal: the same work as for a canary's, its journal
        # line going to the decoy file, so that the answer time tells nothing.
        kind = TokenKind.PORTAL_LOGIN if req.method == "POST" else TokenKind.URL_CODE
        value = req.path.rstrip("/").rpartition("/")[2][:MAX_TOKEN_CHARS].lower()
        _record(portal, req, [(kind, value, "path", {})], decoy=True)
    return answer.response()


def _on_error(error: Exception) -> Response:
    if not isinstance(error, HTTPException):
        request.environ[FAILED] = True
    if request.blueprint == HOOKS_BLUEPRINT:
        if isinstance(error, HTTPException):
            return Response(b"", status=error.code or 400)
        log.exception("webhook failed")
        return Response(b"", status=500)
    log.exception("portal request failed")
    portal: _Portal = current_app.extensions[EXTENSION]
    return (portal.failed_login if request.method == "POST" else portal.page).response()


def _count_request(response: Response) -> Response:
    """after_request (with metrics only): one count per answer, by route group and status."""
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    current_app.extensions[METRICS_EXTENSION].http_request(
        route_group(current_app.extensions[EXTENSION], req), response.status_code,
        error=bool(req.environ.get(FAILED)))
    return response


def route_group(portal: _Portal, req: Request) -> str:
    """webhook: a provider callback route; portal: under the portal path or for a host
    in our zone (canary links and hostnames); other: the rest (mostly internet-wide
    scans), which gets the same portal page."""
    if req.blueprint == HOOKS_BLUEPRINT and req.url_rule is not None:
        return "webhook"
    host = req.host.lower().partition(":")[0].rstrip(".")
    if req.path.startswith(portal.config.portal_path) or host.endswith(portal.zone_suffix):
        return "portal"
    return "other"


def _wants_image(req: Request) -> bool:
    if req.path.lower().endswith(IMAGE_SUFFIXES):
        return True
    accept = req.headers.get("Accept", "")
    return accept[:64].lstrip().lower().startswith("image/")


# -- what the request carries --------------------------------------------

_Found = tuple[TokenKind, str, str, dict[str, Any]]  # kind, value, where, extra evidence


def _tokens_in_request(portal: _Portal, req: Request) -> list[_Found]:
    known = portal.sink.known
    found: list[_Found] = []
    seen: set[tuple[TokenKind, str]] = set()

    def check(kind: TokenKind, value: str, where: str) -> None:
        if value and len(value) <= MAX_TOKEN_CHARS and (kind, value) not in seen and known(kind, value):
            seen.add((kind, value))
            found.append((kind, value, where, {}))

    for segment in req.path.lower().split("/")[-MAX_SEGMENTS:]:
        if segment:
            check(TokenKind.URL_CODE, _strip_suffix(segment), "path")
    if req.query_string:
        values = [v for _, v in req.args.items(multi=True)][:MAX_SEGMENTS]
        for value in values:
            check(TokenKind.URL_CODE, value.strip().lower(), "query")
    host = req.host.lower()[:MAX_TOKEN_CHARS]
    host = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() and not host.endswith("]") else host
    host = host.rstrip(".")
    if host.endswith(portal.zone_suffix):
        for label in host[: -len(portal.zone_suffix)].split(".")[:MAX_SEGMENTS]:
            check(TokenKind.DNS_LABEL, label, "host")
    return found


def _strip_suffix(segment: str) -> str:
    stem, dot, suffix = segment.rpartition(".")
    return stem if dot and "." + suffix in IMAGE_SUFFIXES + (".html", ".htm", ".php") else segment


def _login_attempt(portal: _Portal, req: Request) -> tuple[_Found, bool] | None:
    """The login POSTed, with whether it is a canary's: (found, canary). Its password is
    checked here, for every login alike (the same work whether or not it is a canary's, see
    listener/credentials.py); the password itself is never kept, only whether it matched."""
    try:
        form = req.form
    except Exception:  # too large, bad encoding: a failed login like any other
        return None
    login = next((form[f] for f in LOGIN_FIELDS if form.get(f)), "").strip().lower()
    if not login or len(login) > MAX_TOKEN_CHARS:
        return None
    canary = portal.sink.known(TokenKind.PORTAL_LOGIN, login)
    password = next((form[f] for f in PASSWORD_FIELDS if form.get(f)), "")
    credential = portal.credentials.check(login, password) if portal.credentials is not None else None
    return (TokenKind.PORTAL_LOGIN, login, "login", {"credential": credential}), canary


def _record(portal: _Portal, req: Request, found: list[_Found], decoy: bool = False) -> None:
    """Journal the hits before answering (microseconds: one line appended), or, with a sink
    that stores before returning and ``defer``, store them after answering.
    ``decoy``: the same work for a request without a canary token, written nowhere."""
    remote = portal.config.proxies.client_ip(req.remote_addr, req.environ)
    base = request_evidence(req)
    observations = [Observation(Channel.HTTP, kind, value, remote, cap_evidence({**base, "via": where, **extra}))
                    for kind, value, where, extra in found]
    journal = getattr(portal.sink, "journal", None)
    if decoy and journal is None:
        return

    def store() -> None:
        # With a journal, a canary's line and a decoy's take the same code path (to the µs).
        write = portal.sink.observe if journal is None else journal.decoy if decoy else journal.append
        for observation in observations:
            write(observation)

    if portal.defer is not None and journal is None:
        portal.defer(store)  # a full queue is logged there; the visitor gets the page either way
        return
    try:
        store()
    except Exception:
        # The visitor gets the same page either way: a browser does not retry. A journal
        # that cannot be written has logged why and counted it (append_failed).
        req.environ[FAILED] = True
        if journal is None:
            log.exception("could not record an HTTP hit")


def request_evidence(req: Request) -> dict[str, Any]:
    """What we keep of an HTTP request (capped again by cap_evidence)."""
    headers = req.headers
    evidence = {
        "method": req.method[:16],
        "host": req.host[:MAX_TOKEN_CHARS],
        "path": req.path[:1024],
        "query": req.query_string[:1024].decode("latin-1"),
        "user_agent": headers.get("User-Agent", "")[:512],
        "referer": headers.get("Referer", "")[:512],
        "accept_language": headers.get("Accept-Language", "")[:128],
    }
    if req.remote_addr:
        evidence["peer"] = req.remote_addr
    return evidence
