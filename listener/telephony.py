"""Telephony webhooks: SMS and calls to our phone pool, as the providers report them.

Twilio (SMS and voice, form POSTs signed with ``X-Twilio-Signature``) and
Vonage (inbound SMS, signed with a ``sig`` parameter). The number texted or
called is the canary; the SMS text is evidence: it is the phishing message
sent to patients. A request whose signature does not verify is not recorded;
it gets 403, or the portal page if it is a GET (like any other URL); a
provider without a configured secret has no route (its URLs get the portal
page, like any other URL). The 200 goes out once the hit is journaled (see
canary/hits/journal.py): a journal failure answers 503 so that the provider
retries. Each hit carries the provider's message or call id as its receipt:
a webhook delivered or replayed again is stored once.

The hooks live under a path of their own, random per installation unless
``telephony.hooks_path`` sets one (``hooks_path_for``): one request to a
well-known path would otherwise tell which software answers.

Signatures are checked with the standard library (hmac), as the providers'
SDKs do, rather than pulling in the SDKs for twenty lines.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping
from urllib.parse import quote, urlsplit, urlunsplit
from xml.sax.saxutils import escape

from flask import Blueprint, Flask, Response, current_app, request

from canary.config import Setting
from canary.errors import ConfigError
from canary.hits.hit import Channel, HitSink, Observation, cap_evidence
from canary.model import TokenKind
from canary.tokens import normalise
from listener.proxy import TrustedProxies

if TYPE_CHECKING:
    from listener.metrics import ListenerMetrics

log = logging.getLogger(__name__)

EXTENSION = "canary.telephony"
VONAGE_METHODS = ("md5hash", "md5", "sha1", "sha256", "sha512")
MAX_MEDIA = 10

SETTINGS: tuple[Setting, ...] = (
    Setting("telephony.hooks_path", None,
            "URL path under which the provider webhooks are served on the HTTP listener "
            "(PATH/twilio/sms, PATH/twilio/voice, PATH/vonage/sms); default: a random path made once per "
            "installation and kept in the file hooks-path next to the hit journal (the listener logs it "
            "at start). Two listeners behind one provider URL need the same path: set it."),
    Setting("telephony.public_base_url", None,
            "Public base URL the providers call (e.g. \"https://hooks.example.fr\"); the signed URL is this "
            "plus the request path. Needed behind a TLS-terminating proxy; default: the URL as received."),
    Setting("telephony.twilio.auth_token_env", None,
            "Name of the environment variable holding the Twilio auth token; unset: no Twilio route (those URLs get the portal page).",
            secret_env=True),
    Setting("telephony.vonage.signature_secret_env", None,
            "Name of the environment variable holding the Vonage signature secret; unset: no Vonage route (those URLs get the portal page).",
            secret_env=True),
    Setting("telephony.vonage.signature_method", "md5hash",
            "Vonage signing method chosen in its dashboard: md5hash, md5, sha1, sha256 or sha512 (the HMAC ones)."),
)

TWIML_EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
VOICEMAIL_TEXT = ("Bonjour, vous êtes bien sur la messagerie de votre correspondant. "
                  "Il n'est pas disponible pour le moment. "
                  "Merci de laisser votre message après le bip sonore.")
TWIML_HANGUP = b'<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>'


def voicemail_twiml(recorded_url: str) -> bytes:
    """A carrier-style voicemail greeting, then a recording (the caller's message is evidence)."""
    return ('<?xml version="1.0" encoding="UTF-8"?><Response><Pause length="1"/>'
            f'<Say language="fr-FR">{escape(VOICEMAIL_TEXT)}</Say>'
            f'<Record maxLength="120" timeout="5" playBeep="true" action="{escape(recorded_url, {chr(34): "&quot;"})}"/>'
            "<Hangup/></Response>").encode("utf-8")


HOOKS_BLUEPRINT = "canary_hooks"  # the portal (listener/http.py) tells webhook requests by it


@dataclass(frozen=True, slots=True)
class TelephonyConfig:
    twilio_auth_token: str | None = field(default=None, repr=False)
    vonage_signature_secret: str | None = field(default=None, repr=False)
    vonage_signature_method: str = "md5hash"
    public_base_url: str | None = None
    hooks_path: str = "/hooks"

    @classmethod
    def from_table(cls, table: Mapping[str, Any], environ: Mapping[str, str] = os.environ,
                   state_dir: Path | None = None) -> "TelephonyConfig":
        """From the ``[telephony]`` table (with its ``twilio`` and ``vonage`` sub-tables); without
        ``hooks_path``, the installation's random path kept in ``state_dir`` ("/hooks" without one)."""
        twilio = _subtable(table, "twilio")
        vonage = _subtable(table, "vonage")
        method = str(vonage.get("signature_method", "md5hash")).lower()
        if method not in VONAGE_METHODS:
            raise ConfigError(f"telephony.vonage.signature_method must be one of {', '.join(VONAGE_METHODS)}")
        base = table.get("public_base_url")
        if base is not None and (not isinstance(base, str) or not base.startswith(("https://", "http://"))):
            raise ConfigError("telephony.public_base_url must be a URL starting with https://")
        path = table.get("hooks_path")
        if path is None:
            path = hooks_path_for(state_dir) if state_dir is not None else "/hooks"
        if not isinstance(path, str) or not path.startswith("/") or len(path) < 2 or "?" in path:
            raise ConfigError("telephony.hooks_path must be a URL path like \"/hooks\"")
        return cls(
            twilio_auth_token=_secret(twilio, "auth_token_env", "telephony.twilio", environ),
            vonage_signature_secret=_secret(vonage, "signature_secret_env", "telephony.vonage", environ),
            vonage_signature_method=method,
            public_base_url=base.rstrip("/") if base else None,
            hooks_path=path.rstrip("/"),
        )


HOOKS_PATH_FILE = "hooks-path"


def hooks_path_for(state_dir: Path) -> str:
    """This installation's webhook path: made at random the first time, then read back.
    ``state_dir``: the folder of the hit journal, which the listener may write (/etc is
    read-only under its systemd unit)."""
    file = state_dir / HOOKS_PATH_FILE
    try:
        path = file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path = ""
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {file}: {getattr(err, 'strerror', None) or err}") from None
    if path.startswith("/") and len(path) > 1:
        return path
    path = "/" + secrets.token_urlsafe(15)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(path + "\n")
    except OSError as err:
        raise ConfigError(f"cannot write {file}: {err.strerror}; set telephony.hooks_path instead") from None
    return path


def _subtable(table: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    sub = table.get(name, {})
    if not isinstance(sub, Mapping):
        raise ConfigError(f"[telephony.{name}] must be a table")
    return sub


def _secret(table: Mapping[str, Any], key: str, where: str, environ: Mapping[str, str]) -> str | None:
    env_name = table.get(key)
    if not env_name:
        return None
    value = environ.get(str(env_name))
    if not value:
        raise ConfigError(f"{where}.{key} names {env_name}, which is not set in the environment")
    return value


# -- signatures -------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: Any) -> str:
    """base64(HMAC-SHA1(token, url + each param name and value, sorted by name then value))."""
    data = url
    for name in sorted(set(params)):
        values = params.getlist(name) if hasattr(params, "getlist") else [params[name]]
        for value in sorted(set(values)):
            data += name + value
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def twilio_valid(auth_token: str, url: str, params: Any, signature: str) -> bool:
    """Twilio signs the URL sometimes with, sometimes without its port: accept
    the URL as is, without any port, and with the scheme's default port."""
    if not signature:
        return False
    return any(hmac.compare_digest(twilio_signature(auth_token, candidate, params).encode(), signature.encode())
               for candidate in _port_variants(url))


def _port_variants(url: str) -> Iterable[str]:
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    host = hostport
    if hostport.startswith("["):
        host = hostport[: hostport.index("]") + 1] if "]" in hostport else hostport
    elif ":" in hostport:
        host = hostport.partition(":")[0]
    prefix = userinfo + "@" if userinfo else ""
    without = urlunsplit(parts._replace(netloc=prefix + host))
    if host != hostport:
        return dict.fromkeys((url, without))
    default = 443 if parts.scheme == "https" else 80
    return dict.fromkeys((url, urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}"))))


def vonage_signature(secret: str, params: Mapping[str, Any], method: str = "md5hash") -> str:
    """Vonage SMS signature of the params (``sig`` excluded), lower-case hex.

    Each param, sorted by name, is written ``&name=value`` with ``&`` and ``=``
    in values replaced by ``_``; "md5hash" is MD5 of that plus the secret, the
    other methods are an HMAC of it keyed with the secret.
    """
    data = "".join(f"&{name}={str(params[name]).replace('&', '_').replace('=', '_')}"
                   for name in sorted(params) if name != "sig")
    if method == "md5hash":
        return hashlib.md5((data + secret).encode("utf-8")).hexdigest()
    return hmac.new(secret.encode("utf-8"), data.encode("utf-8"), method).hexdigest()


def vonage_valid(secret: str, params: Mapping[str, Any], method: str = "md5hash") -> bool:
    sig = str(params.get("sig", "")).lower()
    return bool(sig) and hmac.compare_digest(vonage_signature(secret, params, method).encode(), sig.encode())


# -- routes -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hooks:
    sink: HitSink
    config: TelephonyConfig
    proxies: TrustedProxies
    metrics: "ListenerMetrics | None" = None
    disguise: "Callable[[], Response] | None" = None  # the portal's own answer to this request

    def refused(self, provider: str) -> Response:
        """A bad signature, counted. A GET (what a browser or a scanner sends) gets the portal
        page like any other URL, as an empty 403 would tell one request what software runs; a
        POST, what providers send, gets 403 (``canary doctor`` tells a live hook by it)."""
        if self.metrics is not None:
            self.metrics.webhook_rejected(provider, "signature")
        if self.disguise is not None and request.method == "GET":
            return self.disguise()
        return _empty(403)


def register_hooks(app: Flask, sink: HitSink, config: TelephonyConfig, proxies: TrustedProxies,
                   *, metrics: "ListenerMetrics | None" = None,
                   disguise: "Callable[[], Response] | None" = None) -> None:
    app.extensions[EXTENSION] = _Hooks(sink, config, proxies, metrics, disguise)
    # Only the providers set up get routes: any other URL, an unconfigured provider's
    # included, is the portal page like the rest of the site (an empty 404 there would
    # tell a scanner what software answers).
    hooks = Blueprint(HOOKS_BLUEPRINT, __name__, url_prefix=config.hooks_path)
    if config.twilio_auth_token:
        hooks.add_url_rule("/twilio/sms", "twilio_sms", _twilio_sms, methods=["POST"])
        hooks.add_url_rule("/twilio/voice", "twilio_voice", _twilio_voice, methods=["POST"])
        hooks.add_url_rule("/twilio/voice/recorded", "twilio_recorded", _twilio_recorded, methods=["POST"])
    if config.vonage_signature_secret:
        hooks.add_url_rule("/vonage/sms", "vonage_sms", _vonage_sms, methods=["GET", "POST"])
    app.register_blueprint(hooks)


def _hooks() -> _Hooks:
    return current_app.extensions[EXTENSION]


def _empty(status: int) -> Response:
    return Response(b"", status=status)


def _twiml(body: bytes) -> Response:
    return Response(body, status=200, content_type="text/xml; charset=utf-8")


def _signed_url(hooks: _Hooks) -> str:
    """The URL the provider called, as it wrote it (query string untouched)."""
    base = hooks.config.public_base_url or f"{request.scheme}://{request.host}{request.root_path}"
    query = request.query_string.decode("latin-1")
    return base + quote(request.path, safe="/:@!$&'()*+,;=-._~") + ("?" + query if query else "")


def _twilio_checked(hooks: _Hooks) -> Response | None:
    """None when the request is a genuine Twilio one, else the answer to give."""
    token = hooks.config.twilio_auth_token  # set: the route exists only then
    signature = request.headers.get("X-Twilio-Signature", "")
    if not twilio_valid(token, _signed_url(hooks), request.form, signature):
        return hooks.refused("twilio")
    return None


def _store(hooks: _Hooks, channel: Channel, to: str, evidence: Mapping[str, Any], receipt: str = "") -> bool:
    """Record the hit; False if storage failed (the caller answers 503 so the provider retries).

    ``receipt``: the provider's id of the message or call stage (MessageSid, CallSid...); a
    webhook delivered again (a provider retry, a replayed signed request) is stored once."""
    number = normalise(TokenKind.PHONE, to) if to else ""
    if not number:
        return True  # nothing to attribute: acknowledge, record nothing
    remote = hooks.proxies.client_ip(request.remote_addr, request.environ)
    try:
        hooks.sink.observe(Observation(channel, TokenKind.PHONE, number, remote, cap_evidence(evidence),
                                       receipt=f"{receipt[:60]}:{number}" if receipt else None))
    except Exception:
        log.exception("could not record a %s webhook hit", channel.value)
        return False
    return True


def _twilio_sms() -> Response:
    hooks = _hooks()
    refused = _twilio_checked(hooks)
    if refused is not None:
        return refused
    form = request.form
    try:
        num_media = max(0, min(int(form.get("NumMedia", "0") or 0), MAX_MEDIA))
    except ValueError:
        num_media = 0
    evidence = {
        "provider": "twilio", "from": form.get("From", ""), "to": form.get("To", ""),
        "body": form.get("Body", ""), "num_media": num_media,
        "media": [form.get(f"MediaUrl{i}", "") for i in range(num_media)],
        "message_sid": form.get("MessageSid", ""), "from_country": form.get("FromCountry", ""),
    }
    sid = str(form.get("MessageSid", ""))
    if not _store(hooks, Channel.SMS, form.get("To", ""), evidence, f"twilio:sms:{sid}" if sid else ""):
        return _empty(503)
    return _twiml(TWIML_EMPTY)


def _twilio_voice() -> Response:
    hooks = _hooks()
    refused = _twilio_checked(hooks)
    if refused is not None:
        return refused
    form = request.form
    evidence = {
        "provider": "twilio", "stage": "call", "from": form.get("From", ""), "to": form.get("To", ""),
        "call_sid": form.get("CallSid", ""), "call_status": form.get("CallStatus", ""),
        "caller_name": form.get("CallerName", ""), "from_country": form.get("FromCountry", ""),
    }
    sid = str(form.get("CallSid", ""))
    if not _store(hooks, Channel.VOICE, form.get("To", ""), evidence, f"twilio:call:{sid}" if sid else ""):
        return _empty(503)
    base = hooks.config.public_base_url or ""
    return _twiml(voicemail_twiml(base + hooks.config.hooks_path + "/twilio/voice/recorded"))


def _twilio_recorded() -> Response:
    """The caller left a message: its recording URL (kept at Twilio) is evidence."""
    hooks = _hooks()
    refused = _twilio_checked(hooks)
    if refused is not None:
        return refused
    form = request.form
    evidence = {
        "provider": "twilio", "stage": "recording", "from": form.get("From", ""), "to": form.get("To", ""),
        "call_sid": form.get("CallSid", ""), "recording_url": form.get("RecordingUrl", ""),
        "recording_duration": form.get("RecordingDuration", ""),
    }
    sid = str(form.get("CallSid", ""))
    if not _store(hooks, Channel.VOICE, form.get("To", ""), evidence, f"twilio:rec:{sid}" if sid else ""):
        return _empty(503)
    return _twiml(TWIML_HANGUP)


def _vonage_params() -> dict[str, Any]:
    if request.method == "POST" and request.is_json:
        data = request.get_json(silent=True)
        return {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}
    source = request.form if request.method == "POST" and request.form else request.args
    return source.to_dict(flat=True)


def _vonage_sms() -> Response:
    hooks = _hooks()
    secret = hooks.config.vonage_signature_secret  # set: the route exists only then
    params = _vonage_params()
    if not vonage_valid(secret, params, hooks.config.vonage_signature_method):
        return hooks.refused("vonage")
    to = str(params.get("to", "")).strip()
    evidence = {
        "provider": "vonage", "from": params.get("msisdn", ""), "to": to, "body": params.get("text", ""),
        "type": params.get("type", ""), "message_id": params.get("messageId", ""),
        "timestamp": params.get("message-timestamp", ""),
        "concat": {k: params[k] for k in ("concat-ref", "concat-total", "concat-part") if k in params},
    }
    message_id = str(params.get("messageId", ""))
    if not _store(hooks, Channel.SMS, "+" + to if to.isdigit() else to, evidence,
                  f"vonage:sms:{message_id}" if message_id else ""):
        return _empty(503)
    return _empty(200)
