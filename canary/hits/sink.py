"""RegistryHitSink: the HitSink the listener's front ends call (see canary/hits/hit.py).

``observe`` matches the value against the registry's tokens, classifies the
observation with the canary's recent hits as context, and stores the Hit,
its incident update and any alert it causes in ONE registry transaction,
then returns: a front end that answers its client after ``observe`` (SMTP
250, webhook 200) never acknowledges a hit that is not durably stored, and a
stored hit always has its alert enqueued. Storage errors raise
(RegistryError) so the front end answers with a temporary failure and the
sender retries.

Thread-safe: every call takes its own connection from the registry's engine;
SQLite writers are serialised by ``BEGIN IMMEDIATE``, PostgreSQL ones by the
source row lock (see canary/registry/hitstore.py).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

from canary.hits.classify import ClassifyRules, classify
from canary.hits.hit import Classification, Hit, Observation, cap_evidence
from canary.model import TokenKind
from canary.hits.tokenindex import TokenIndex

if TYPE_CHECKING:
    from canary.alerts.policy import Alerter
    from canary.registry import Registry
    from canary.registry.hitrecords import TokenMatch
    from canary.registry.hitstore import AlertTx

log = logging.getLogger(__name__)


class HitMetrics(Protocol):
    """What the sink reports (listener/metrics.py's ListenerMetrics has it)."""

    def hit(self, channel: str, classification: str) -> None: ...


class RegistryHitSink:
    def __init__(self, registry: "Registry", index: TokenIndex, rules: ClassifyRules | None = None,
                 alerter: "Alerter | None" = None, metrics: HitMetrics | None = None) -> None:
        self.registry = registry
        self.index = index
        self.rules = rules or ClassifyRules()
        self.alerter = alerter
        self.metrics = metrics  # counts stored hits; the listener sets it
        # Called once a hit's immediate alert is committed (the listener hands the outbox
        # worker's wake): the alert leaves now, not at the worker's next poll.
        self.wake: Callable[[], None] | None = None

    def known(self, kind: TokenKind, value: str) -> bool:
        """In-memory, no I/O (see TokenIndex)."""
        return self.index.known(kind, value)

    def observe(self, observation: Observation) -> bool:
        """Store; False when the observation's receipt was already stored (a replay)."""
        replayed: list[Hit] = []
        self.record(observation, replayed)
        return not replayed

    def observe_many(self, observations: Sequence[Observation]) -> list[bool]:
        """Store several observations in ONE registry transaction (the hit journal's writer
        hands it a batch); for each, False when its receipt was already stored (a replay).

        Each is stored exactly as ``observe`` would store it alone, in order (a later one sees
        the hits, incidents and alerts of the earlier ones), but the transaction is paid once:
        all are committed together, or none (a registry error rolls the whole batch back and
        the caller retries it; the journal's cursor moves only after the commit).
        """
        prepared = [self._prepare(observation, None) for observation in observations]
        done: list[_Stored] = []
        with self.registry.alert_transaction() as tx:
            stored = tx.hits_by_receipts([o.receipt for o, _ in prepared if o.receipt])
            for observation, classification in prepared:
                done.append(self._store(tx, observation, classification, stored))
        for one in done:  # committed: wake, count and log, as ``record`` does after its commit
            self._after(one)
        return [not one.replayed for one in done]

    def record(self, observation: Observation, replayed: list[Hit] | None = None, *,
               classification: Classification | None = None) -> Hit:
        """``observe`` that returns the stored Hit (the earlier one for a stored receipt,
        which is then also appended to ``replayed``).

        ``classification`` (or the observation's own) is given by callers that decide it themselves
        (the access channel: canary.access.match.BurstPolicy); otherwise ``classify`` decides. An unmatched value
        stays UNMATCHED whatever is given.
        """
        observation, classification = self._prepare(observation, classification)
        with self.registry.alert_transaction() as tx:
            stored = tx.hits_by_receipts([observation.receipt] if observation.receipt else [])
            one = self._store(tx, observation, classification, stored)
        if one.replayed:
            if replayed is not None:
                replayed.append(one.hit)
            return one.hit
        self._after(one)
        return one.hit

    @staticmethod
    def _prepare(observation: Observation, classification: Classification | None
                 ) -> tuple[Observation, Classification | None]:
        classification = classification or observation.classification
        at = observation.at or datetime.now(timezone.utc)
        if at.tzinfo is None:  # front ends should pass UTC; a naive time is taken as UTC
            at = at.replace(tzinfo=timezone.utc)
        evidence = _json_safe(cap_evidence(observation.evidence or {}))
        return replace(observation, at=at, evidence=evidence), classification

    def _store(self, tx: "AlertTx", observation: Observation, classification: Classification | None,
               stored: dict[str, Hit]) -> "_Stored":
        """One observation inside ``tx``; ``stored`` maps the receipts already stored to their hit
        (this transaction's new hits are added to it: a receipt twice in a batch is stored once)."""
        at = observation.at
        assert at is not None  # _prepare dated it
        if observation.receipt:
            earlier = stored.get(observation.receipt)
            if earlier is not None:  # a replay: stored (and alerted) the first time
                return _Stored(earlier, None, earlier.classification, False, True, observation)
        match = tx.match(observation.kind, observation.value)
        if match is None or classification is None:
            recent = tx.recent_hits(match.canary.id, at - self.rules.lookback) if match else []
            classification = classify(observation, recent, self.rules, matched=match is not None)
        hit = tx.insert_hit(
            channel=observation.channel, kind=observation.kind, value=observation.value,
            remote=observation.remote, at=at, recorded_at=datetime.now(timezone.utc),
            classification=classification, evidence=observation.evidence, match=match,
            receipt=observation.receipt,
        )
        if observation.receipt:
            stored[observation.receipt] = hit
        queued = match is not None and self.alerter is not None and self.alerter.on_hit(tx, hit, match)
        return _Stored(hit, match, classification, queued, False, observation)

    def _after(self, one: "_Stored") -> None:
        """Once committed: wake the outbox, count, log."""
        hit, match, observation = one.hit, one.match, one.observation
        if one.queued and self.wake is not None:
            self.wake()
        if self.metrics is not None:  # stored: counted once, never for a hit that was rolled back
            self.metrics.hit(observation.channel.value, one.classification.value)
        # Ids, source, channel and client address only: never the value (a token) or evidence.
        if match is not None:
            log.warning("hit #%d: canary #%d of source %s, %s via %s from %s",
                        hit.id, match.canary.id, match.source.name, one.classification.value,
                        observation.channel.value, observation.remote or "-")
        else:
            log.info("hit #%d: %s value matching no canary, via %s", hit.id,
                     observation.kind.value, observation.channel.value)


@dataclass(frozen=True)
class _Stored:
    hit: Hit
    match: "TokenMatch | None"
    classification: Classification
    queued: bool  # an immediate alert was enqueued
    replayed: bool  # the receipt was stored before: nothing new
    observation: Observation


def _json_safe(value: Any) -> Any:
    """Evidence as plain JSON: odd types become text, NaN/infinity too (PostgreSQL refuses them)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return str(value)
