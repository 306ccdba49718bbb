"""The FHIR seeder: one FR Core Patient per canary on a FHIR R4 server (REST, JSON).

The source URL is the server's FHIR base (``https://fhir.example.fr/fhir``).
Each canary is a ``POST Patient`` with ``If-None-Exist`` on its INS, so a
retried request never makes a second patient; the Patient is read back and
deleted again if the server did not keep what was sent (a FHIR server has
no transaction spanning our checks). ``verify`` reads it by id, ``retire``
deletes it after checking it is still ours. The resource is built and
validated by seeders/fhir/patient.py, shaped after the server's recent
patients by seeders/fhir/host.py.
"""

from __future__ import annotations

import os
import random
import re
from datetime import datetime
from typing import Any, Iterable

from canary.errors import ConfigError, MappingError, SourceError
from canary.model import Identity, Placement, VerifyResult, VerifyState
from seeders.fhir import footprint as lab_footprint
from seeders.fhir import host as fhirhost
from seeders.fhir import patient as fp
from seeders.base import PlannedRow, Seeder, SeederOption
from seeders.fhir.http import CREATE_ATTEMPTS, FhirClient

_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_PI_ATTEMPTS = 20


class FhirSeeder(Seeder):
    name = "fhir"
    summary = "A FHIR R4 server (REST, JSON): one FR Core Patient per canary, created conditionally."
    options = (
        SeederOption("token_env", "environment variable holding a bearer token (OAuth2 access token)"),
        SeederOption("username", "user name for HTTP basic authentication"),
        SeederOption("password_env", "environment variable holding the basic-authentication password"),
        SeederOption("pi_system", "system URI of the hospital's patient number (identifier type PI); 'auto': "
                     "the one the server's recent Patients carry, none if they carry none", default="auto"),
        SeederOption("general_practitioner", "'auto': a GP reference most recent Patients share, else the "
                     "identity's GP by RPPS; 'identity'; 'none'; or a reference such as Practitioner/123",
                     default="auto"),
        SeederOption("identity_status", "the qualified identityStatus written with the INS: 'VALI' "
                     "(fr-core-cs-v2-0445, FR Core 2.1.0/2.2.0), 'QUAL' (fr-core-cs-identity-status, FR Core "
                     "builds after PR #306) or 'auto': the code system the server's recent Patients use, else VALI",
                     default="auto"),
        SeederOption("footprint", "'lab': with each Patient, a ServiceRequest, Specimen, Observations and a "
                     "DiagnosticReport for one common panel (seeders/fhir/lab.py); 'none'", default="none"),
        SeederOption("timeout", "seconds to wait for each answer of the server", default="15"),
    )

    def __init__(self, source, url: str) -> None:
        super().__init__(source, url)
        self.client: FhirClient | None = None
        self.conv: fhirhost.FhirConventions | None = None
        self._create_attempts = CREATE_ATTEMPTS
        self._rnd = random.SystemRandom()

    @classmethod
    def validate_options(cls, options: dict[str, str]) -> dict[str, Any]:
        checked = super().validate_options(options)
        rules = {
            "token_env": (_ENV_NAME, "an environment variable name"),
            "password_env": (_ENV_NAME, "an environment variable name"),
            "username": (r"[^:\s]+", "a user name without ':' or spaces"),
            "pi_system": (r"auto|urn:(oid|uuid):[\w.:-]+|https?://\S+", "an absolute URI (urn:oid:..., https://...)"),
            "general_practitioner": (r"auto|identity|none|Practitioner(Role)?/[A-Za-z0-9.-]{1,64}",
                                     "auto, identity, none or Practitioner/ID"),
            "identity_status": (r"auto|VALI|QUAL", "auto, VALI or QUAL"),
            "footprint": (r"none|lab", "none or lab"),
            "timeout": (r"\d+(\.\d+)?", "a number of seconds"),
        }
        for name, value in checked.items():
            pattern, expected = rules[name]
            if not re.fullmatch(pattern, str(value)):
                raise ConfigError(f"seeder 'fhir': option {name}={value!r} is not valid: give {expected}")
        if checked.get("token_env") and checked.get("username"):
            raise ConfigError("seeder 'fhir': give token_env (bearer) or username and password_env (basic), not both")
        if checked.get("password_env") and not checked.get("username"):
            raise ConfigError("seeder 'fhir': password_env needs username")
        return checked

    # -- lifecycle -------------------------------------------------------
    def open(self) -> None:
        self.close()
        self.validate_options(dict(self.source.options))
        if not re.match(r"^https?://", self.url or ""):
            raise ConfigError(f"source '{self.source.name}': the URL must be the FHIR base URL (http(s)://...)")
        client = FhirClient(self.source.name, self.url, token=self._secret("token_env"),
                            username=self.option("username"), password=self._secret("password_env"),
                            timeout=float(self.option("timeout")))
        try:
            capabilities = client.capabilities()
            version = str(capabilities.get("fhirVersion", ""))
            if not version.startswith("4.0"):
                raise MappingError(f"source '{self.source.name}': {client.shown_base} speaks FHIR {version or '?'}; "
                                   "the fhir seeder writes R4 (4.0.x) resources")
            self._create_attempts = CREATE_ATTEMPTS if _conditional_create(capabilities) else 1
            pi_system = self.option("pi_system")
            self.conv = fhirhost.learn(self._recent_patients(client), None if pi_system == "auto" else pi_system)
            if self.option("identity_status") != "auto":
                self.conv.identity_status = str(self.option("identity_status"))
            self.client = client
        except BaseException:
            client.close()
            raise

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _secret(self, option: str) -> str | None:
        variable = self.option(option)
        if not variable:
            return None
        value = os.environ.get(variable)
        if not value:
            raise ConfigError(f"source '{self.source.name}': environment variable {variable} ({option}) is not set")
        return value

    def _recent_patients(self, client: FhirClient) -> list[dict[str, Any]]:
        """The latest Patients; servers that cannot sort by _lastUpdated give their first page."""
        response = client.request("GET", "Patient", params={"_count": fhirhost.SAMPLE, "_sort": "-_lastUpdated"},
                                  expect=(200, 400))
        if response.status_code == 400:
            return client.search("Patient", {"_count": fhirhost.SAMPLE})
        return [e["resource"] for e in client.body(response).get("entry") or ()
                if (e.get("resource") or {}).get("resourceType") == "Patient"]

    def _ready(self) -> tuple[FhirClient, fhirhost.FhirConventions]:
        if self.client is None or self.conv is None:
            raise RuntimeError("FhirSeeder.open() was not called")
        return self.client, self.conv

    # -- building --------------------------------------------------------
    def _patient(self, identity: Identity, *, final: bool) -> dict[str, Any]:
        client, conv = self._ready()
        pi = None
        if conv.pi_system:
            value = self._free_pi(client, conv) if final else conv.new_pi(self._rnd)
            pi = fp.pi_identifier(conv.pi_system, value, conv.pi_template)
        resource = fp.build_patient(identity, conv, pi=pi, general_practitioner=self._gp(identity, conv))
        problems = fp.validate_patient(resource)
        if problems:
            raise MappingError(f"source '{self.source.name}': the Patient of this identity is not valid FR Core: "
                               f"{problems[0]}")
        return resource

    def _free_pi(self, client: FhirClient, conv: fhirhost.FhirConventions) -> str:
        for _ in range(_PI_ATTEMPTS):
            value = conv.new_pi(self._rnd)
            if not client.search("Patient", {"identifier": f"{conv.pi_system}|{value}", "_count": 1}):
                return value
        raise SourceError(f"source '{self.source.name}': no free patient number found in {_PI_ATTEMPTS} draws")

    def _gp(self, identity: Identity, conv: fhirhost.FhirConventions) -> dict[str, Any] | None:
        choice = str(self.option("general_practitioner"))
        if choice == "none":
            return None
        if choice == "auto" and conv.general_practitioners:
            return dict(self._rnd.choice(conv.general_practitioners))
        if choice in ("auto", "identity"):
            return fp.gp_reference(identity)
        return {"reference": choice}

    def plan(self, identity: Identity) -> list[PlannedRow]:
        rows = [PlannedRow(table="Patient", values=self._patient(identity, final=False))]
        if self.option("footprint") == "lab":
            rows += [PlannedRow(table=r["resourceType"], values=r)
                     for r in lab_footprint.preview(self._rnd, datetime.now())]
        return rows

    def check_fits(self, identities: Iterable[Identity]) -> None:
        for identity in identities:
            self._patient(identity, final=False)

    # -- planting --------------------------------------------------------
    def collides(self, identity: Identity) -> bool:
        client, _ = self._ready()
        if client.search("Patient", {"identifier": fp.ins_search(identity.nir), "_count": 1}):
            return True
        for family in {identity.birth_name, identity.last_name}:
            if client.search("Patient", {"family": family, "given": identity.first_name,
                                         "birthdate": identity.birth_date.isoformat(), "_count": 1}):
                return True
        return False

    def plant(self, identity: Identity) -> Placement:
        client, _ = self._ready()
        resource = self._patient(identity, final=True)
        created = client.create(resource, f"identifier={fp.ins_search(identity.nir)}",
                                attempts=self._create_attempts)
        if created.status == 200:  # If-None-Exist matched: our earlier POST, whose answer was lost?
            existing = self._ours(identity)
            if existing is None:
                raise SourceError(f"source '{self.source.name}': a Patient with this INS already exists on "
                                  f"{client.shown_base} and is not a canary; draw another identity")
            return self._placement(existing["id"], existing)
        if created.id is None:
            self._compensate(identity, None)
            raise SourceError(f"source '{self.source.name}': {client.shown_base} created the Patient without "
                              "saying its id; it was deleted again")
        try:
            stored = client.read("Patient", created.id)
        except SourceError:
            self._compensate(identity, created.id)
            raise
        changed = fp.changed_elements(resource, stored) if stored else ["Patient"]
        if changed:
            self._compensate(identity, created.id)
            raise MappingError(f"source '{self.source.name}': {client.shown_base} did not keep {changed[0]} as sent; "
                               "the Patient was deleted again")
        footprint = []
        if self.option("footprint") == "lab":
            try:
                footprint = lab_footprint.plant(client, created.id, self._rnd, datetime.now())
            except (SourceError, MappingError) as err:
                self._compensate(identity, created.id)
                raise type(err)(f"{err}; the Patient was deleted again") from None
        return self._placement(created.id, resource, footprint)

    def _placement(self, rid: str, resource: dict[str, Any], footprint: list[dict[str, Any]] | None = None) -> Placement:
        sent = {name: resource[name] for name in fp.COMPARED if name in resource}
        extra = {"resource": "Patient", "id": str(rid), "base": self._ready()[0].shown_base, "sent": sent}
        if footprint:
            extra["footprint"] = footprint
        return Placement(extra=extra)

    def _ours(self, identity: Identity) -> dict[str, Any] | None:
        found = [r for r in self._ready()[0].search("Patient", {"identifier": fp.ins_search(identity.nir)})
                 if fp.is_ours(r, identity) and r.get("id")]
        return found[0] if len(found) == 1 else None

    def _compensate(self, identity: Identity, rid: str | None) -> None:
        """Delete the Patient just created (a half-planted canary must not stay)."""
        client = self._ready()[0]
        try:
            if rid is None:
                found = self._ours(identity)
                rid = found["id"] if found else None
            if rid is not None:
                client.delete("Patient", rid)
        except SourceError as err:
            raise SourceError(f"{err} (and Patient/{rid} could not be deleted: retire it once the server "
                              "answers)") from None

    # -- after planting --------------------------------------------------
    def _target_id(self, placement: Placement) -> str | None:
        client = self._ready()[0]
        base = placement.extra.get("base")
        if base and base != client.shown_base:
            raise SourceError(f"source '{self.source.name}': this canary was planted on {base}, the source now "
                              f"points at {client.shown_base}; fix the source URL")
        return placement.extra.get("id")

    def verify(self, identity: Identity, placement: Placement) -> VerifyResult:
        rid = self._target_id(placement)
        if not rid:
            return VerifyResult(VerifyState.MISSING, ("the placement names no Patient",))
        current = self._ready()[0].read("Patient", rid)
        if current is None:
            return VerifyResult(VerifyState.MISSING, (f"Patient/{rid} is gone",))
        changed = fp.changed_elements(placement.extra.get("sent") or {}, current)
        if current.get("link"):
            changed.append("Patient.link")  # merged into another record
        details = [f"{name} changed" for name in changed]
        details += lab_footprint.check(self._ready()[0], placement.extra.get("footprint") or [])
        if details:
            return VerifyResult(VerifyState.ALTERED, tuple(details))
        return VerifyResult(VerifyState.OK)

    def retire(self, placement: Placement) -> None:
        rid = self._target_id(placement)
        if not rid:
            return
        client = self._ready()[0]
        current = client.read("Patient", rid)
        sent = placement.extra.get("sent") or {}
        if current is not None and not _shares_identifier_or_email(sent, current):
            raise SourceError(f"source '{self.source.name}': Patient/{rid} on {client.shown_base} no longer carries "
                              "the canary's INS or e-mail; it was not deleted")
        # The footprint goes first, even when the Patient is already gone: it refers to the Patient.
        lab_footprint.delete(client, placement.extra.get("footprint") or [])
        if current is not None:
            client.delete("Patient", rid)

    def locate(self, identity: Identity) -> Placement | None:
        found = self._ours(identity)
        return None if found is None else self._placement(found["id"], found)


def _conditional_create(capabilities: dict[str, Any]) -> bool:
    """False only when the server says it ignores If-None-Exist for Patient."""
    for rest in capabilities.get("rest") or ():
        for resource in rest.get("resource") or ():
            if resource.get("type") == "Patient" and resource.get("conditionalCreate") is False:
                return False
    return True


def _shares_identifier_or_email(sent: dict[str, Any], current: dict[str, Any]) -> bool:
    def keys(resource: dict[str, Any]) -> set[tuple[str, str]]:
        ids = {(i.get("system"), i.get("value")) for i in resource.get("identifier") or ()}
        emails = {("email", str(t.get("value", "")).lower()) for t in resource.get("telecom") or ()
                  if t.get("system") == "email"}
        return ids | emails

    return bool(keys(sent) & keys(current))
