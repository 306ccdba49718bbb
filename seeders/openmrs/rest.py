"""The OpenMRS REST calls the seeder makes: re-index one row, search patients, check the login.

* ``POST /ws/rest/v1/searchindexupdate`` (webservices.rest module >= 2.27,
  ``SearchIndexController2_0.updateSearchIndex``) with
  ``{"resource": ..., "subResource": ..., "uuid": ...}`` re-indexes one
  entity, answered 204 (200 by the first 2.27 builds);
* ``GET /ws/rest/v1/session`` (``SessionController1_9.get``) for
  ``canary doctor``: whether the credentials are accepted;
* ``GET /ws/rest/v1/patient?q=...&v=default`` (``PatientResource1_8.doSearch``
  -> ``PatientService.getPatients``) searches the index the way the patient
  search screens do; an unindexed patient gives ``{"results": []}``.

HTTP basic authentication (``AuthorizationFilter``), a timeout on every
call, TLS certificates verified. Every failure is one ``SourceError`` line
with the URL redacted and never the password.
"""

from __future__ import annotations

from typing import Any

import requests

from canary.dsn import redact
from canary.errors import SourceError

API = "ws/rest/v1"
TIMEOUT = 15.0  # seconds, connect and read
_MAX_REASON = 160


def base_url(rest_url: str) -> str:
    """The webapp's base (``https://host/openmrs``), whether or not the API path was given."""
    base = rest_url.strip().rstrip("/")
    return base[: -len(API) - 1] if base.endswith("/" + API) else base


class OpenMrsRest:
    def __init__(self, source_name: str, rest_url: str, user: str, password: str, timeout: float = TIMEOUT) -> None:
        self.source_name = source_name
        self.base = base_url(rest_url)
        self.shown = redact(self.base)
        self.timeout = timeout
        self._password = password
        self.session = requests.Session()
        self.session.auth = (user, password)
        self.session.verify = True  # never turned off: the password travels in this session
        self.session.headers["Accept"] = "application/json"

    def close(self) -> None:
        self.session.close()

    def check_credentials(self) -> None:
        """SourceError unless OpenMRS accepts rest_user's credentials (``GET /session``, which reads nothing)."""
        response = self._call("GET", "session", expect=(200,))
        try:
            authenticated = response.json().get("authenticated")
        except (ValueError, AttributeError):
            authenticated = None
        if authenticated is not True:
            raise SourceError(f"source '{self.source_name}': OpenMRS REST {self.shown} did not accept the "
                              "credentials: check rest_user and the password variable (rest_password_env)")

    def reindex(self, resource: str, sub_resource: str, uuid: str) -> None:
        """Ask OpenMRS to (re)index the one ``resource/subResource`` entity with this uuid."""
        body = {"resource": resource, "subResource": sub_resource, "uuid": uuid}
        self._call("POST", "searchindexupdate", expect=(200, 204), json=body)

    def search_patients(self, query: str) -> list[dict[str, Any]]:
        """The patients the application's search returns for ``query`` (first page)."""
        response = self._call("GET", "patient", expect=(200,), params={"q": query, "v": "default"})
        try:
            results = response.json().get("results")
        except (ValueError, AttributeError):
            results = None
        if not isinstance(results, list):
            raise SourceError(f"source '{self.source_name}': OpenMRS REST {self.shown} answered a patient search "
                              "without a results list: is rest_url the OpenMRS webapp (e.g. https://host/openmrs)?")
        return [r for r in results if isinstance(r, dict)]

    def _call(self, method: str, path: str, *, expect: tuple[int, ...], **kwargs: Any) -> requests.Response:
        where = f"source '{self.source_name}': OpenMRS REST {self.shown}"
        try:
            response = self.session.request(method, f"{self.base}/{API}/{path}", timeout=self.timeout, **kwargs)
        except requests.RequestException as err:
            raise SourceError(f"{where} unreachable: {self._reason(err)}") from None
        if response.status_code in (401, 403):
            raise SourceError(f"{where} refused the credentials (HTTP {response.status_code}): check rest_user "
                              "and the password variable (rest_password_env); an admin account is needed")
        if response.status_code == 404 and path == "searchindexupdate":
            raise SourceError(f"{where} has no searchindexupdate resource (HTTP 404): it needs the REST web "
                              "services module 2.27 or newer")
        if response.status_code not in expect:
            raise SourceError(f"{where}: {method} {path} failed (HTTP {response.status_code}): "
                              f"{self._reason(response.text)}")
        return response

    def _reason(self, what: Any) -> str:
        text = str(what)
        # requests nests the cause: keep its last, human part ("[Errno 111] Connection refused").
        for marker in ("NewConnectionError(", "ConnectTimeoutError(", "NameResolutionError("):
            if marker in text:
                text = text.split(marker, 1)[1]
                text = text.split(": ", 1)[-1] if ": " in text else text
        text = " ".join(text.rstrip("')\"").split())
        if self._password:
            text = text.replace(self._password, "***")
        if self.base != self.shown:
            text = text.replace(self.base, self.shown)
        return text[:_MAX_REASON] or "no answer"
