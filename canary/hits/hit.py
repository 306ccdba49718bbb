"""Hits: a network event that used one of our contact points.

The flow is: front end (listener/) -> Observation -> HitSink.observe ->
Hit stored in the registry -> alert pipeline. Front ends know nothing about
the registry or alerts: they receive a HitSink and call it.

CONTRACT for front ends (listener/dns.py, http.py, smtp.py, telephony.py):

    sink.known(kind, value) -> bool
        Fast in-memory check (no I/O): is this a canary token? Used on hot
        paths (DNS) to avoid building an Observation for every query. Front
        ends must answer known and unknown tokens identically; this only
        decides whether to record.
    sink.observe(observation) -> None
        Records durably before returning (raises on storage failure), so a
        front end that acknowledges after it (SMTP 250, webhook 200) never
        loses a hit. Observations of unknown tokens at our own domains may be
        passed too; the sink stores them without alerting.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Protocol

from canary.model import TokenKind

# Evidence is attacker-controlled: every string is capped before storage.
MAX_EVIDENCE_FIELD = 2048


class Channel(str, enum.Enum):
    DNS = "dns"
    HTTP = "http"
    SMTP = "smtp"
    SMS = "sms"
    VOICE = "voice"
    BREACH = "breach"  # HIBP domain monitoring
    VERIFY = "verify"  # verify found a canary deleted or altered
    ACCESS = "access"  # a hospital audit trail shows a canary's record opened (canary/access)


class Classification(str, enum.Enum):
    CREDENTIAL_USE = "credential-use"  # portal login with a canary's credentials
    HUMAN = "human"  # looks like a person acting on the record
    AUTOMATED = "automated"  # link scanners, preview bots, crawlers
    RESOLVER_RECHECK = "resolver-recheck"  # repeat DNS from the same resolver
    INTERNAL = "internal"  # our networks and gateways (reminders sent by the hospital)
    UNMATCHED = "unmatched"  # our domain, but no canary: recorded, never alerted
    # Access channel only, decided by canary.access.match.BurstPolicy (never by classify()):
    UNJUSTIFIED_ACCESS = "unjustified-access"  # one canary's record opened: nobody's patient
    BULK_ACCESS = "bulk-access"  # several canaries by one account, or an export/query: a theft


@dataclass(frozen=True, slots=True)
class Observation:
    """What a front end saw, before matching and classification."""

    channel: Channel
    kind: TokenKind  # which kind of token ``value`` is
    value: str  # normalised token value (lower-case label/email/code, E.164 phone)
    remote: str | None  # client IP address as seen (after trusted-proxy handling)
    evidence: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None  # default: now (UTC)
    # Stored once per receipt: the journal entry id, or a provider's message id
    # (Twilio MessageSid/CallSid) so that a replay or a retried webhook is one hit.
    receipt: str | None = None
    # Decided by the front end itself (the access channel: canary.access.match.BurstPolicy,
    # at receipt, so that a hit replayed from the journal keeps it); None: ``classify`` decides.
    classification: Classification | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """A stored observation, matched to its canary and classified."""

    id: int
    canary_id: int | None  # None for UNMATCHED
    source: str | None
    channel: Channel
    kind: TokenKind
    value: str
    remote: str | None
    at: datetime
    classification: Classification
    evidence: Mapping[str, Any]


class HitSink(Protocol):
    def known(self, kind: TokenKind, value: str) -> bool: ...

    def observe(self, observation: Observation) -> None: ...


def cap_evidence(evidence: Mapping[str, Any], limit: int = MAX_EVIDENCE_FIELD) -> dict[str, Any]:
    """Truncate attacker-controlled strings (recursively) before storage."""

    def cap(value: Any) -> Any:
        if isinstance(value, str):
            return value if len(value) <= limit else value[:limit] + "…[truncated]"
        if isinstance(value, bytes):
            return cap(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {str(k)[:128]: cap(v) for k, v in list(value.items())[:64]}
        if isinstance(value, (list, tuple)):
            return [cap(v) for v in list(value)[:64]]
        return value

    return cap(dict(evidence))
