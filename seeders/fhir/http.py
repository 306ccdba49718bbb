"""A small FHIR R4 REST client for the seeder: read, search, conditional create, delete.

It only speaks JSON (``application/fhir+json``) and turns every failure
into a one-line ``SourceError`` (server unreachable, credentials refused,
unexpected answer) or ``MappingError`` (the server rejected the resource),
with the base URL redacted and never a token or password in the text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

from canary.dsn import redact
from canary.errors import MappingError, SourceError

FHIR_JSON = "application/fhir+json"
# Conditional create makes a POST safe to repeat: a lost answer is retried.
CREATE_ATTEMPTS = 3
_RETRY_PAUSE = 0.2
_TRANSIENT = {502, 503, 504}
_MAX_REASON = 200


@dataclass(frozen=True)
class Created:
    status: int  # 201 created, 200 an existing match (If-None-Exist)
    id: str | None
    resource: dict[str, Any] | None


class FhirClient:
    def __init__(self, source_name: str, base_url: str, *, token: str | None = None,
                 username: str | None = None, password: str | None = None, timeout: float = 15.0) -> None:
        self.source_name = source_name
        self.base = base_url.rstrip("/")
        self.shown_base = redact(self.base)
        self.timeout = timeout
        self._secrets = [s for s in (token, password) if s]
        self.session = requests.Session()
        self.session.headers.update({"Accept": FHIR_JSON})
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif username:
            self.session.auth = (username, password or "")

    def close(self) -> None:
        self.session.close()

    # -- requests ----------------------------------------------------------
    def request(self, method: str, path: str, *, expect: tuple[int, ...] = (200,), **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, f"{self.base}/{path}", timeout=self.timeout, **kwargs)
        except requests.RequestException as err:
            raise SourceError(f"source '{self.source_name}': cannot reach FHIR server {self.shown_base}: "
                              f"{self._reason(err)}") from None
        if response.status_code in (401, 403):
            raise SourceError(f"source '{self.source_name}': FHIR server {self.shown_base} refused the credentials "
                              f"(HTTP {response.status_code}): check token_env, or username and password_env")
        if response.status_code not in expect:
            raise self.failure(method, path, response)
        return response

    def failure(self, method: str, path: str, response: requests.Response) -> SourceError:
        return SourceError(f"source '{self.source_name}': {method} {path.split('?')[0]} on {self.shown_base} "
                           f"failed (HTTP {response.status_code}): {self.outcome(response)}")

    def capabilities(self) -> dict[str, Any]:
        return self.body(self.request("GET", "metadata"))

    def read(self, resource_type: str, rid: str) -> dict[str, Any] | None:
        """The resource, or None when it is deleted or unknown (404, 410)."""
        response = self.request("GET", f"{resource_type}/{rid}", expect=(200, 404, 410))
        return self.body(response) if response.status_code == 200 else None

    def search(self, resource_type: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The matching resources of the first page of a search."""
        bundle = self.body(self.request("GET", resource_type, params=params))
        return [e["resource"] for e in bundle.get("entry") or () if isinstance(e.get("resource"), dict)
                and e["resource"].get("resourceType") == resource_type
                and (e.get("search") or {}).get("mode", "match") == "match"]

    def create(self, resource: dict[str, Any], if_none_exist: str | None, *,
               attempts: int = CREATE_ATTEMPTS) -> Created:
        """POST with If-None-Exist; retried on lost answers, which cannot duplicate.

        Give ``attempts=1`` for a server that does not honour If-None-Exist,
        and for a resource created without a condition (``if_none_exist``
        None): there a retry could make a second one.
        """
        headers = {"Content-Type": FHIR_JSON, "Prefer": "return=representation"}
        if if_none_exist:
            headers["If-None-Exist"] = if_none_exist
        path = resource["resourceType"]
        for attempt in range(1, attempts + 1):
            try:
                response = self.request("POST", path, json=resource, headers=headers,
                                        expect=(200, 201, 400, 412, 422, *_TRANSIENT))
            except SourceError:
                if attempt == attempts:
                    raise
                time.sleep(_RETRY_PAUSE * attempt)
                continue
            if response.status_code in _TRANSIENT and attempt < attempts:
                time.sleep(_RETRY_PAUSE * attempt)
                continue
            if response.status_code in (400, 422):
                raise MappingError(f"source '{self.source_name}': the FHIR server rejected the {path} "
                                   f"(HTTP {response.status_code}): {self.outcome(response)}")
            if response.status_code not in (200, 201):
                raise self.failure("POST", path, response)
            body = self.body(response) if response.content else None
            return Created(response.status_code, _created_id(response, body, path), body)
        raise AssertionError("unreachable")

    def delete(self, resource_type: str, rid: str) -> bool:
        """Delete; False if it was already gone."""
        response = self.request("DELETE", f"{resource_type}/{rid}", expect=(200, 202, 204, 404, 410))
        return response.status_code in (200, 202, 204)

    # -- text ----------------------------------------------------------------
    def body(self, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise SourceError(f"source '{self.source_name}': {self.shown_base} did not answer FHIR JSON "
                              f"(HTTP {response.status_code}): is the URL the FHIR base?") from None
        if not isinstance(body, dict):
            raise SourceError(f"source '{self.source_name}': {self.shown_base} answered JSON that is not a resource")
        return body

    def outcome(self, response: requests.Response) -> str:
        """The first OperationOutcome issue, or the start of the body, as one safe line."""
        text = ""
        try:
            body = response.json()
            issue = (body.get("issue") or [{}])[0]
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or ""
        except (ValueError, AttributeError, IndexError):
            text = response.text
        return self._scrub(text) or response.reason or "no details"

    def _reason(self, err: Exception) -> str:
        text = str(err)
        # requests nests the cause: keep its last, human part ("[Errno 111] Connection refused").
        for marker in ("NewConnectionError(", "ConnectTimeoutError(", "NameResolutionError("):
            if marker in text:
                text = text.split(marker, 1)[1]
                text = text.split(": ", 1)[-1] if ": " in text else text
        return self._scrub(text.rstrip("')\"")) or type(err).__name__

    def _scrub(self, text: str) -> str:
        text = " ".join(str(text).split())
        for secret in self._secrets:
            text = text.replace(secret, "***")
        if self.base != self.shown_base:
            text = text.replace(self.base, self.shown_base)
        return text[:_MAX_REASON]


def _created_id(response: requests.Response, body: dict[str, Any] | None, resource_type: str) -> str | None:
    """The id from Location (``.../Patient/123/_history/1``) or from the returned resource."""
    location = response.headers.get("Location") or response.headers.get("Content-Location") or ""
    parts = location.rstrip("/").split("/")
    if resource_type in parts:
        index = parts.index(resource_type)
        if index + 1 < len(parts):
            return parts[index + 1]
    if body and body.get("resourceType") == resource_type and body.get("id"):
        return str(body["id"])
    return None
