"""A small FHIR R4 server for the seeder tests: Patients in memory, FR Core checked on the way in.

Three pieces, as the project's network servers are built:

* ``PatientStore`` holds the Patients (versions, deletions, searches);
* ``create_app(store, settings)`` is the Flask app: metadata, conditional
  create, read, search, delete, authentication, and its own FR Core
  validation (written apart from the seeder's, so a seeder mistake is caught
  here and answered 422 with an OperationOutcome, as real servers do): FHIR
  R4 by fhir.resources and FR Core Patient INS in the version the server is
  set to (support/fhir_validation.py);
* ``FhirTestServer`` binds 127.0.0.1 on port 0, serves in a thread, and
  stops cleanly.

Laboratory resources (ServiceRequest, Specimen, Observation, DiagnosticReport)
are kept too: validated by fhir.resources, their references must resolve, and a
resource still referred to cannot be deleted (409), as HAPI's referential
integrity does.

Knobs for failure tests live in ``ServerSettings``: answer 503 after storing
a created Patient (a lost answer), or store a Patient without some elements.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import parse_qs

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from support.fhir_validation import r4, r4_plus, validate_patient_ins

INS = "urn:oid:1.2.250.1.213.1.4.8"
INS_TYPE = ("https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203", "INS-NIR")
PI_TYPE = ("http://terminology.hl7.org/CodeSystem/v2-0203", "PI")
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_EXT = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
FHIR_JSON = "application/fhir+json"
LAB_TYPES = ("ServiceRequest", "Specimen", "Observation", "DiagnosticReport")


@dataclass
class ServerSettings:
    bearer: str | None = None  # required token, if any
    basic: tuple[str, str] | None = None  # required (user, password), if any
    lose_create_answers: int = 0  # answer 503 after storing this many created Patients
    refuse_lab: str | None = None  # answer 422 to this laboratory resource type
    drop_on_store: tuple[str, ...] = ()  # elements not kept when storing (a server stripping data)
    sortable: bool = True  # supports _sort=-_lastUpdated
    conditional_create: bool = True  # honours If-None-Exist (and says so in its CapabilityStatement)
    leaky_reads: bool = False  # reads fail with a two-line error echoing the Authorization header
    fr_core: str = "2.2.0"  # FR Core version whose Patient INS profile is enforced (fhir_validation.VERSIONS)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) seen


class PatientStore:
    def __init__(self) -> None:
        self.patients: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.lab: dict[str, dict[str, Any]] = {}  # "Observation/12" -> resource
        self._next = 1
        self._lock = threading.Lock()

    def add(self, resource: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
        with self._lock:
            rid = str(self._next)
            self._next += 1
            stored = {k: v for k, v in resource.items() if k not in drop and k != "id"}
            stored["id"] = rid
            stored["meta"] = {**(resource.get("meta") or {}), "versionId": "1",
                              "lastUpdated": datetime.now(timezone.utc).isoformat(timespec="microseconds")}
            self.patients[rid] = stored
            return stored

    def delete(self, rid: str) -> bool:
        with self._lock:
            if self.patients.pop(rid, None) is None:
                return False
            self.deleted.add(rid)
            return True

    def add_lab(self, resource: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            rid = str(self._next)
            self._next += 1
            stored = {**resource, "id": rid, "meta": {"versionId": "1", "lastUpdated": datetime.now(
                timezone.utc).isoformat(timespec="microseconds")}}
            self.lab[f"{resource['resourceType']}/{rid}"] = stored
            return stored

    def exists(self, reference: str) -> bool:
        kind, _, rid = reference.partition("/")
        return rid in self.patients if kind == "Patient" else reference in self.lab

    def referrers(self, reference: str) -> list[str]:
        return [key for key, resource in self.lab.items() if reference in _references(resource)]

    def search(self, params: dict[str, str]) -> list[dict[str, Any]]:
        found = list(self.patients.values())
        if "identifier" in params:
            system, _, value = params["identifier"].rpartition("|")
            found = [p for p in found if any(i.get("value") == value and (not system or i.get("system") == system)
                                             for i in p.get("identifier") or ())]
        for name in ("family", "given"):
            if name in params:
                wanted = fold(params[name])
                found = [p for p in found if any(fold(v).startswith(wanted) for n in p.get("name") or ()
                                                 for v in ([n.get("family", "")] if name == "family"
                                                           else n.get("given") or ()))]
        if "birthdate" in params:
            found = [p for p in found if p.get("birthDate") == params["birthdate"]]
        if params.get("_sort") == "-_lastUpdated":
            found.sort(key=lambda p: p["meta"]["lastUpdated"], reverse=True)
        return found[: int(params.get("_count", 100))]


def fold(text: str) -> str:
    """Case- and accent-insensitive form, as FHIR string search compares."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def outcome(status: int, message: str, code: str = "invalid"):
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": message}]}
    response = jsonify(body)
    response.status_code = status
    response.content_type = FHIR_JSON
    return response


def fhir(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None):
    response = jsonify(body)
    response.status_code = status
    response.content_type = FHIR_JSON
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def create_app(store: PatientStore, settings: ServerSettings) -> Flask:
    app = Flask("fhir-test-server")

    @app.before_request
    def _authenticate():
        settings.requests.append((request.method, request.path))
        if request.path.endswith("/metadata"):
            return None  # the CapabilityStatement is public, as on most servers
        header = request.headers.get("Authorization", "")
        if settings.bearer and header != f"Bearer {settings.bearer}":
            return outcome(401, "authentication required", "login")
        if settings.basic:
            auth = request.authorization
            if auth is None or (auth.username, auth.password) != settings.basic:
                return outcome(401, "authentication required", "login")
        return None

    @app.get("/fhir/metadata")
    def metadata():
        return fhir({"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
                     "fhirVersion": "4.0.1", "format": ["json"],
                     "rest": [{"mode": "server", "resource": [{"type": "Patient", "conditionalCreate": settings.conditional_create}]}]})

    @app.get("/fhir/Patient")
    def search():
        params = {k: v for k, v in request.args.items()}
        if params.get("_sort") and (not settings.sortable or params["_sort"] != "-_lastUpdated"):
            return outcome(400, f"unsupported _sort {params['_sort']}", "not-supported")
        found = store.search(params)
        base = request.host_url.rstrip("/") + "/fhir"
        return fhir({"resourceType": "Bundle", "type": "searchset", "total": len(found),
                     "entry": [{"fullUrl": f"{base}/Patient/{p['id']}", "resource": p, "search": {"mode": "match"}}
                               for p in found]})

    @app.post("/fhir/Patient")
    def create():
        if request.mimetype not in (FHIR_JSON, "application/json"):
            return outcome(415, f"unsupported content type {request.mimetype}", "not-supported")
        resource = request.get_json(silent=True)
        if not isinstance(resource, dict):
            return outcome(400, "body is not a JSON resource", "structure")
        problems = validate_fr_core(resource, settings.fr_core)
        if problems:
            return outcome(422, problems[0])
        condition = request.headers.get("If-None-Exist")
        if condition and settings.conditional_create:
            query = {k: v[0] for k, v in parse_qs(condition).items()}
            if not query:
                return outcome(400, f"If-None-Exist {condition!r} has no search parameter", "invalid")
            matches = store.search(query)
            if len(matches) > 1:
                return outcome(412, "If-None-Exist matches several Patients", "duplicate")
            if matches:
                return fhir(matches[0], 200, {"Location": _location(matches[0])})
        stored = store.add(resource, settings.drop_on_store)
        if settings.lose_create_answers > 0:
            settings.lose_create_answers -= 1
            return outcome(503, "upstream timeout", "transient")
        return fhir(stored, 201, {"Location": _location(stored)})

    @app.get("/fhir/Patient/<rid>")
    def read(rid: str):
        if settings.leaky_reads:
            return outcome(500, f"backend error\nrequest had Authorization: {request.headers.get('Authorization')}",
                           "exception")
        if rid in store.patients:
            return fhir(store.patients[rid])
        if rid in store.deleted:
            return outcome(410, f"Patient/{rid} is deleted", "deleted")
        return outcome(404, f"Patient/{rid} is unknown", "not-found")

    @app.delete("/fhir/Patient/<rid>")
    def delete(rid: str):
        if store.referrers(f"Patient/{rid}"):
            return outcome(409, f"Patient/{rid} is referred to by {store.referrers(f'Patient/{rid}')[0]}",
                           "conflict")
        if store.delete(rid):
            return "", 204
        return outcome(404, f"Patient/{rid} is unknown", "not-found")

    @app.post("/fhir/<kind>")
    def create_lab(kind: str):
        resource = request.get_json(silent=True)
        if kind not in LAB_TYPES or not isinstance(resource, dict) or resource.get("resourceType") != kind:
            return outcome(400, f"cannot create {kind} here", "not-supported")
        problems = r4(resource) + r4_plus(resource)
        problems += [f"reference {ref} does not resolve" for ref in _references(resource) if not store.exists(ref)]
        if settings.refuse_lab == kind:
            problems.append(f"{kind} refused by a business rule")
        if problems:
            return outcome(422, problems[0])
        stored = store.add_lab(resource)
        return fhir(stored, 201, {"Location": f"{request.host_url.rstrip('/')}/fhir/{kind}/{stored['id']}"})

    @app.get("/fhir/<kind>/<rid>")
    def read_lab(kind: str, rid: str):
        found = store.lab.get(f"{kind}/{rid}")
        return fhir(found) if found else outcome(404, f"{kind}/{rid} is unknown", "not-found")

    @app.delete("/fhir/<kind>/<rid>")
    def delete_lab(kind: str, rid: str):
        key = f"{kind}/{rid}"
        if store.referrers(key):
            return outcome(409, f"{key} is referred to by {store.referrers(key)[0]}", "conflict")
        return ("", 204) if store.lab.pop(key, None) else outcome(404, f"{key} is unknown", "not-found")

    return app


def _references(value: Any) -> set[str]:
    """Every literal reference ("Type/id") a resource holds."""
    if isinstance(value, dict):
        found = {value["reference"]} if isinstance(value.get("reference"), str) else set()
        return found.union(*(_references(v) for k, v in value.items() if k != "reference"))
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value))
    return set()


def _location(patient: dict[str, Any]) -> str:
    return f"{request.host_url.rstrip('/')}/fhir/Patient/{patient['id']}/_history/{patient['meta']['versionId']}"


# -- FR Core validation, written apart from the seeder's ---------------------------
def validate_fr_core(patient: dict[str, Any], version: str = "2.2.0") -> list[str]:
    from stdnum.fr import nir

    if patient.get("resourceType") != "Patient":
        return ["not a Patient"]
    problems = validate_patient_ins(patient, version)
    problems += _empties(patient, "Patient")
    if (patient.get("meta") or {}).get("tag") or (patient.get("meta") or {}).get("security"):
        problems.append("meta.tag and meta.security are not accepted here")
    identifiers = patient.get("identifier") or []
    ins = [i for i in identifiers if i.get("system") == INS]
    if len(ins) != 1:
        problems.append("exactly one INS-NIR identifier is required")
    else:
        if not nir.is_valid(str(ins[0].get("value", ""))) or len(str(ins[0].get("value"))) != 15:
            problems.append("INS-NIR value fails the NIR key check")
        if INS_TYPE not in _codings(ins[0].get("type")) or ins[0].get("use") != "official":
            problems.append("INS-NIR identifier needs type fr-core-cs-v2-0203#INS-NIR and use official")
    for identifier in identifiers:
        if not re.match(r"^(urn:(oid|uuid):|https?://)", str(identifier.get("system", ""))):
            problems.append("identifier.system must be an absolute URI")
        if PI_TYPE in _codings(identifier.get("type")) and not str(identifier.get("value", "")).strip():
            problems.append("PI identifier without value")
    names = patient.get("name") or []
    official = [n for n in names if n.get("use") == "official"]
    if len(official) != 1 or not official[0].get("family") or not official[0].get("given"):
        problems.append("one official name with family and given is required")
    if any(n.get("use") not in ("official", "usual", "maiden", "nickname", "old", "temp", "anonymous")
           for n in names):
        problems.append("name.use is not a HumanName use")
    for point in patient.get("telecom") or []:
        if point.get("system") not in ("phone", "email", "fax", "sms", "url", "pager", "other") \
                or point.get("use", "home") not in ("home", "work", "mobile", "temp", "old"):
            problems.append("telecom system/use is not a ContactPoint code")
        elif point["system"] == "phone" and not re.fullmatch(r"\+?[\d .-]{9,20}", str(point.get("value"))):
            problems.append("telecom phone value is not a phone number")
        elif point["system"] == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.\w+", str(point.get("value"))):
            problems.append("telecom email value is not an e-mail address")
    if patient.get("gender") not in ("male", "female", "other", "unknown"):
        problems.append("gender is not an AdministrativeGender code")
    try:
        if date.fromisoformat(str(patient.get("birthDate"))) > date.today() or len(patient["birthDate"]) != 10:
            problems.append("birthDate is in the future")
    except (ValueError, KeyError):
        problems.append("birthDate is not a FHIR date")
    for address in patient.get("address") or []:
        if not re.fullmatch(r"\d{5}", str(address.get("postalCode", ""))) or not address.get("city"):
            problems.append("a French address needs a 5-digit postalCode and a city")
    places = [e for e in patient.get("extension") or [] if e.get("url") == BIRTH_PLACE]
    for place in places:
        codes = [x for x in (place.get("valueAddress") or {}).get("extension") or [] if x.get("url") == INSEE_EXT]
        if len(codes) != 1 or not re.fullmatch(r"\d{5}|2[AB]\d{3}", str(codes[0].get("valueCoding", {}).get("code"))):
            problems.append("birthPlace needs one INSEE code")
    for gp in patient.get("generalPractitioner") or []:
        if not gp.get("reference") and not gp.get("identifier"):
            problems.append("generalPractitioner needs a reference or an identifier")
    return problems


def _codings(concept: Any) -> set[tuple[Any, Any]]:
    return {(c.get("system"), c.get("code")) for c in (concept or {}).get("coding") or []}


def _empties(value: Any, path: str) -> list[str]:
    if value is None or value == "" or value == [] or value == {}:
        return [f"{path} is empty (ele-1)"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _empties(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for v in value for p in _empties(v, path)]
    return []


class FhirTestServer:
    """Serve the app on 127.0.0.1, on a port the OS picks; ``base_url`` ends with /fhir."""

    def __init__(self, settings: ServerSettings | None = None) -> None:
        self.settings = settings or ServerSettings()
        self.store = PatientStore()
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/fhir"

    def start(self) -> "FhirTestServer":
        # make_server binds at once: a bind error is raised here, in the caller's thread.
        self._server = make_server("127.0.0.1", 0, create_app(self.store, self.settings), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fhir-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> "FhirTestServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
