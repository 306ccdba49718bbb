"""A fake OpenMRS REST server for the seeder tests: the search index behaviour, and nothing else.

It reproduces what the seeder relies on, each from the code it follows
(openmrs-core 2.6.x, openmrs-module-webservices.rest HEAD):

* the patient search reads a search index, not the tables: a row written in
  SQL is found only once it has been indexed (``HibernatePatientDAO
  .findPatients``: identifier query, then ``PersonLuceneQuery
  .getPatientNameQuery``, each result loaded with ``getPatient``);
* ``POST /ws/rest/v1/searchindexupdate`` indexes what
  ``SearchIndexController2_0.updateSearchIndex`` indexes for each body form;
* credentials by HTTP basic authentication, 401 without them
  (``AuthorizationFilter`` then ``BaseRestController
  .apiAuthenticationExceptionHandler``), except ``GET /session``
  (``SessionController1_9.get``), which says whether they were accepted.

The index holds copies of the rows taken when they were indexed, as Lucene
documents do; the patient itself is read from the test MariaDB database.
``FakeOpenMrs`` binds 127.0.0.1 on port 0, serves in a thread, stops cleanly.
"""

from __future__ import annotations

import json
import threading
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

API = "/openmrs/ws/rest/v1"
# resource[/subResource] -> (table, index kind), as RestService.getResourceByName resolves them
# (PersonNameResource1_8 "v1/person/name", PatientIdentifierResource1_8 "v1/patient/identifier",
# PersonAttributeResource1_8 "v1/person/attribute").
INDEXED_RESOURCES = {
    "person/name": ("person_name", "name"),
    "patient/identifier": ("patient_identifier", "identifier"),
    "person/attribute": ("person_attribute", "attribute"),
}


@dataclass
class FakeSettings:
    user: str = "admin"
    password: str = "Admin123"
    calls: list[tuple[str, str, Any]] = field(default_factory=list)  # (method, path, JSON body or query)


class SearchIndex:
    """Indexed documents by kind ("name", "identifier", "attribute") and row uuid."""

    def __init__(self, db_url: str) -> None:
        self.engine = sa.create_engine(db_url)
        self.documents: dict[str, dict[str, dict[str, Any]]] = {"name": {}, "identifier": {}, "attribute": {}}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.engine.dispose()

    def _rows(self, table: str, where: str = "", **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {table} {where}"), params)]

    def index_one(self, table: str, kind: str, uuid: str) -> bool:
        """``Context.updateSearchIndexForObject(getByUniqueId(uuid))``; False when no such row."""
        rows = self._rows(table, "WHERE uuid = :uuid", uuid=uuid)
        if not rows:
            return False
        with self._lock:
            self.documents[kind][uuid] = rows[0]
        return True

    def index_type(self, table: str, kind: str) -> None:
        """``Context.updateSearchIndexForType``: purge the type's documents, index all its rows."""
        rows = self._rows(table)
        with self._lock:
            self.documents[kind] = {row["uuid"]: row for row in rows}

    def rebuild(self) -> None:
        """``Context.updateSearchIndex``: every indexed type again."""
        for table, kind in INDEXED_RESOURCES.values():
            self.index_type(table, kind)

    def search(self, query: str) -> list[dict[str, Any]]:
        """Patients for ``q``: identifier matches first, then names (every word starts a name part)."""
        words = analyzed(query)
        if len(query) < 2:  # findPatients: shorter than GLOBAL_PROPERTY_DEFAULT_MIN_SEARCH_CHARACTERS, nothing
            return []
        # Identifiers: HibernatePatientDAO.getPatientIdentifierLuceneQuery ORs the query's tokens over
        # identifierPhrase/identifierExact|Start|Anywhere; an exact match is found in every match mode.
        # Names: PersonLuceneQuery.getPatientNameQuery, every word on givenName/middleName/familyName/
        # familyName2 "Start" fields (patientSearch.matchMode START, the default).
        with self._lock:
            identifiers = [d for d in self.documents["identifier"].values()
                           if not d["voided"] and analyzed(d["identifier"])[0] in words]
            names = [d for d in self.documents["name"].values() if not d["voided"] and words and all(
                any(token.startswith(w) for part in ("given_name", "middle_name", "family_name", "family_name2")
                    for token in analyzed(d.get(part) or "")) for w in words)]
        person_ids = []
        for person_id in [d["patient_id"] for d in identifiers] + [d["person_id"] for d in names]:
            if person_id not in person_ids:  # skipSame("patient.personId")
                person_ids.append(person_id)
        return [p for p in (self._patient(pid) for pid in person_ids) if p is not None]

    def _patient(self, person_id: int) -> dict[str, Any] | None:
        """``getPatient(personId)``, read from the database: the default representation's first fields."""
        people = self._rows("person JOIN patient ON patient.patient_id = person.person_id",
                            "WHERE person.person_id = :p AND patient.voided = 0", p=person_id)
        if not people:
            return None
        identifiers = self._rows("patient_identifier", "WHERE patient_id = :p AND voided = 0 "
                                 "ORDER BY preferred DESC", p=person_id)
        names = self._rows("person_name", "WHERE person_id = :p AND voided = 0 ORDER BY preferred DESC",
                           p=person_id)
        shown = f"{names[0]['given_name']} {names[0]['family_name']}" if names else ""
        return {"uuid": people[0]["uuid"],
                "display": f"{identifiers[0]['identifier']} - {shown}" if identifiers else shown,
                "identifiers": [{"uuid": i["uuid"], "display": i["identifier"]} for i in identifiers]}


def analyzed(text: str) -> list[str]:
    """Tokens as OpenMRS's Lucene analyzers make them (LuceneAnalyzerFactory: START_ANALYZER and
    EXACT_ANALYZER split on whitespace, lower-case and fold accents to ASCII): "DA SILVA" is two tokens."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return folded.lower().split()


def create_app(index: SearchIndex, settings: FakeSettings) -> Flask:
    app = Flask("fake-openmrs")

    @app.get(f"{API}/session")
    def session():
        # SessionController1_9.get: 200 whoever asks, {"authenticated": Context.isAuthenticated()}; wrong
        # credentials are not refused by AuthorizationFilter, which only tries Context.authenticate.
        auth = request.authorization
        known = auth is not None and (auth.username, auth.password) == (settings.user, settings.password)
        settings.calls.append(("GET", "session", {}))
        return jsonify({"authenticated": known})

    @app.before_request
    def _authenticate():
        if request.path == f"{API}/session":
            return None
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != (settings.user, settings.password):
            # APIAuthenticationException on the @Authorized service call -> 401
            return jsonify({"error": {"message": "User is not logged in [Privileges required: Get Persons]"}}), 401
        return None

    @app.post(f"{API}/searchindexupdate")
    def searchindexupdate():
        # SearchIndexController2_0.updateSearchIndex(String json)
        text = request.get_data(as_text=True)
        body = json.loads(text) if text.strip() else {}
        settings.calls.append(("POST", "searchindexupdate", body))
        resource, sub, uuid = body.get("resource"), body.get("subResource"), body.get("uuid")
        if not resource:
            index.rebuild()  # Context.updateSearchIndex() or updateSearchIndexAsync()
            return Response(status=204)
        name = f"{resource}/{sub}" if sub else resource
        if name == "patient":
            # Patient is not @Indexed (only @ContainedIn): Hibernate Search 5's FullTextSession.index
            # throws IllegalArgumentException, BaseRestController.handleException answers 500 (2.1-2.7).
            return jsonify({"error": {"message": "Entity to index is not an @Indexed entity: "
                                                 "org.openmrs.Patient"}}), 500
        if name not in INDEXED_RESOURCES:
            return jsonify({"error": {"message": "Unknown resource"}}), 404  # UnknownResourceException
        table, kind = INDEXED_RESOURCES[name]
        if not uuid:
            index.index_type(table, kind)  # Context.updateSearchIndexForType(supportedClass)
            return Response(status=204)
        if not index.index_one(table, kind, uuid):
            # getByUniqueId returned null: FullTextSession.index(null) throws IllegalArgumentException -> 500
            return jsonify({"error": {"message": "Entity to index should not be null"}}), 500
        return Response(status=204)

    @app.get(f"{API}/patient")
    def patients():
        # PatientResource1_8.doSearch -> PatientService.getPatients(q) -> HibernatePatientDAO.findPatients
        settings.calls.append(("GET", "patient", dict(request.args)))
        return jsonify({"results": index.search(request.args.get("q", ""))})

    return app


class FakeOpenMrs:
    """The fake on 127.0.0.1, port chosen by the OS; ``url`` is the webapp base (``.../openmrs``)."""

    def __init__(self, db_url: str, settings: FakeSettings | None = None) -> None:
        self.settings = settings or FakeSettings()
        self.index = SearchIndex(db_url)
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/openmrs"

    def start(self) -> "FakeOpenMrs":
        self._server = make_server("127.0.0.1", 0, create_app(self.index, self.settings), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openmrs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None
        self.index.close()

    def __enter__(self) -> "FakeOpenMrs":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
