"""FHIR audit receiver: POST of an AuditEvent or a Bundle of them on the HTTP listener (RESTful ATNA, IHE BALP).

``POST /audit/fhir/AuditEvent`` (one resource) and ``POST /audit/fhir`` (a
Bundle, batch or transaction, or one resource), with ``Authorization:
Bearer <token>``, the token read from the environment variable named by
``[listener] audit_fhir_token_env``. Without that setting (or with the
variable empty) these paths are the patient portal like every other URL.

It is WSGI middleware in front of the portal app (so the portal's "every URL
is the portal" rule stays untouched): the two paths are answered here with
FHIR-shaped JSON (201 with an OperationOutcome, the same whether a canary was
named or not, 400 for
an unreadable message, 401 without the token, 413 above the cap, 503 when the
registry cannot store); everything else goes to the portal.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from typing import Any, Callable, Iterable, Mapping

from canary.access.event import AuditMessageError
from canary.access.fhiraudit import MAX_BUNDLE_BYTES
from canary.config import Setting
from canary.errors import ConfigError
from listener.auditintake import AuditIntake

log = logging.getLogger("canary.listener.audit")

PATHS = ("/audit/fhir", "/audit/fhir/AuditEvent")

SETTINGS: tuple[Setting, ...] = (
    Setting("listener.audit_fhir_token_env", None,
            "Name of the environment variable holding the bearer token FHIR audit senders must present "
            "(POST /audit/fhir/AuditEvent and /audit/fhir on the HTTP listener); unset: no FHIR audit "
            "receiver.", secret_env=True),
)


def fhir_token(table: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> str | None:
    """The bearer token, or None when the receiver is not set up."""
    name = table.get("audit_fhir_token_env")
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise ConfigError("listener.audit_fhir_token_env must name an environment variable")
    token = environ.get(name, "")
    if len(token) < 16:
        raise ConfigError(f"listener.audit_fhir_token_env: the variable {name} must hold a token of at "
                          "least 16 characters")
    return token


class AuditFhirMiddleware:
    def __init__(self, app: Callable, intake: AuditIntake, token: str) -> None:
        self.app = app
        self.intake = intake
        self._token = token.encode()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/") not in PATHS:
            return self.app(environ, start_response)
        remote = environ.get("REMOTE_ADDR")
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, 405, "not-supported", "POST an AuditEvent or a Bundle")
        given = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._token):
            self.intake.count("fhir", "invalid", remote, "missing or wrong bearer token")
            return _answer(start_response, 401, "login", "bearer token required")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BUNDLE_BYTES:
            self.intake.count("fhir", "oversized", remote, f"Content-Length {environ.get('CONTENT_LENGTH')}")
            return _answer(start_response, 413, "too-costly", f"at most {MAX_BUNDLE_BYTES} bytes")
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            self.intake.fhir_body(body, remote)
        except AuditMessageError as err:
            return _answer(start_response, 400, "invalid", str(err)[:200])
        except Exception:
            log.exception("FHIR audit message from %s could not be recorded", remote)
            return _answer(start_response, 503, "transient", "could not be stored: send again later")
        # The same answer whether the message named a canary or not: the sender learns nothing.
        return _answer(start_response, 201, "informational", "recorded", severity="information")


def _answer(start_response: Callable, status: int, code: str, text: str, severity: str = "error") -> list[bytes]:
    body = json.dumps({"resourceType": "OperationOutcome",
                       "issue": [{"severity": severity, "code": code, "diagnostics": text}]}).encode()
    reasons = {201: "Created", 400: "Bad Request", 401: "Unauthorized", 405: "Method Not Allowed",
               413: "Payload Too Large", 503: "Service Unavailable"}
    headers = [("Content-Type", "application/fhir+json"), ("Content-Length", str(len(body))),
               ("Cache-Control", "no-store")]
    if status == 401:
        headers.append(("WWW-Authenticate", 'Bearer realm="canary-audit"'))
    start_response(f"{status} {reasons[status]}", headers)
    return [body]
