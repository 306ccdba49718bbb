"""The admin app: pages behind a login, plus /metrics, /healthz and /readyz.

``create_admin_app(registry, config, metrics=..., readiness=...)`` builds it;
``canary listen`` serves it with a second ``listener.wsgi.HttpServer`` on
``listener.admin`` (loopback by default). The operational endpoints need no
login: monitoring scrapes them, and they tell nothing about sources or
canaries (counters and "ok"); the address itself is the protection.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from canary.errors import RegistryError, SourceError
from listener.admin.auth import Authenticator
from listener.admin.config import AdminConfig
from listener.admin.state import EXTENSION, AdminState, Metrics, Readiness, state
from listener.admin.views import blueprint

if TYPE_CHECKING:
    from canary.registry import Registry

log = logging.getLogger("canary.admin")

MAX_BODY = 16384  # a login form; nothing else is posted
CSP = ("default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
       "form-action 'self'")


def create_admin_app(registry: "Registry", config: AdminConfig, *, metrics: Metrics | None = None,
                     readiness: Readiness | None = None) -> Flask:
    app = Flask(__name__, static_folder="static", static_url_path="/static", template_folder="templates")
    secure = config.secure_cookies
    app.config.update(
        SECRET_KEY=config.session_key or secrets.token_bytes(32),  # random: sessions end at restart
        # "__Host-": the browser only takes it over a secure context, without Domain, on "/".
        SESSION_COOKIE_NAME="__Host-canary-admin" if secure else "canary-admin",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/",
        PERMANENT_SESSION_LIFETIME=config.session_lifetime,
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=MAX_BODY,
        MAX_FORM_MEMORY_SIZE=MAX_BODY,
        WTF_CSRF_TIME_LIMIT=int(config.session_lifetime.total_seconds()),
        # Behind an HTTPS proxy Flask-WTF would also demand a same-origin Referer,
        # which our Referrer-Policy (no-referrer) never sends: the token and the
        # SameSite=Strict cookie are the protection.
        WTF_CSRF_SSL_STRICT=False,
    )
    CSRFProtect(app)
    app.extensions[EXTENSION] = AdminState(registry=registry, config=config, auth=Authenticator(config),
                                           metrics=metrics, readiness=readiness)
    app.jinja_env.filters["when"] = _when
    app.jinja_env.filters["size"] = _size
    app.jinja_env.filters["pct"] = _pct
    app.add_url_rule("/healthz", "healthz", _healthz)
    app.add_url_rule("/readyz", "readyz", _readyz)
    app.add_url_rule("/metrics", "metrics", _metrics)
    app.register_blueprint(blueprint)
    app.after_request(_headers)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(SourceError, _unknown)
    app.register_error_handler(RegistryError, _registry_down)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _crash)
    return app


# -- operations: no login -----------------------------------------------------------------


def _healthz() -> Response:
    return Response("ok\n", mimetype="text/plain")


def _readyz() -> Response:
    check = state().readiness
    try:
        checks = dict(check()) if check is not None else {}
    except Exception:
        log.exception("readiness check failed")
        checks = {"readiness": "check failed"}
    ready = all(value == "ok" for value in checks.values())
    body = json.dumps({"status": "ok" if ready else "unavailable", "checks": checks}, sort_keys=True)
    return Response(body + "\n", status=200 if ready else 503, mimetype="application/json")


def _metrics() -> Response:
    metrics = state().metrics
    if metrics is None:
        return _page_error(404, "Not found", "No metrics are served here.")
    body, content_type = metrics.exposition(full=_metrics_trusted())
    return Response(body, content_type=content_type)


def _metrics_trusted() -> bool:
    """Every metric for the bearer token's holder, or a loopback client (Prometheus on this
    host, an SSH tunnel); others get the public subset (listener/metrics.py PRIVATE_PREFIXES)."""
    token = state().config.metrics_token
    given = request.headers.get("Authorization", "")
    if token is not None and given.startswith("Bearer "):
        return hmac.compare_digest(given[7:].strip().encode("utf-8"), token.encode("utf-8"))
    try:
        return ipaddress.ip_address((request.remote_addr or "").split("%")[0]).is_loopback
    except ValueError:
        return False


# -- every response ------------------------------------------------------------------------


def _headers(response: Response) -> Response:
    headers = response.headers
    headers["Content-Security-Policy"] = CSP
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    if request.endpoint != "static":
        headers["Cache-Control"] = "no-store"
    return response


def _page_error(status: int, title: str, message: str) -> Response:
    body = render_template("error.html", title=title, message=message, status=status)
    return Response(body, status=status, mimetype="text/html")


def _csrf_error(error: CSRFError) -> Response:
    return _page_error(400, "Form expired", "This form was too old or not sent from the dashboard: "
                                            "reload the page and try again.")


def _unknown(error: SourceError) -> Response:
    return _page_error(404, "Unknown source", "No source of that name is in the registry.")


def _registry_down(error: RegistryError) -> Response:
    log.error("admin page: registry unavailable (%s)", error)
    return _page_error(503, "Registry unavailable", "The registry database does not answer: "
                                                    "see the listener's log.")


def _http_error(error: HTTPException) -> Response:
    code = error.code or 500
    if code == 401:
        return _page_error(code, "Log in first", "This needs a login.")
    if code == 404:
        return _page_error(code, "Not found", "There is no such page.")
    return _page_error(code, error.name, "This request is not accepted here.")


def _crash(error: Exception) -> Response:
    log.exception("admin page failed")
    return _page_error(500, "Error", "This page failed; the details are in the listener's log.")


# -- template filters ----------------------------------------------------------------------


def _when(value: datetime | str | None, empty: str = "—") -> str:
    """A registry datetime, or an ISO 8601 text of a stored report, as "YYYY-MM-DD HH:MM" UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value  # shown as it is (escaped by the template)
    if value is None:
        return empty
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def _size(n: Any) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.1f} %"
