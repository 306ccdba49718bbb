"""What the registry hands back: plain frozen values, detached from the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from canary.model import (
    CanaryStatus,
    Identity,
    Placement,
    SourceSpec,
    TokenKind,
    VerifyState,
)


@dataclass(frozen=True, slots=True)
class Batch:
    """One planting run (``canary plant``) or one drip step."""

    id: int
    label: str
    source: str  # source name
    created_at: datetime
    operator: str
    planned: int
    kind: str = "manual"
    planted: int = 0  # how many of this batch reached the target so far
    note: str | None = None


@dataclass(frozen=True, slots=True)
class CanaryRecord:
    id: int
    source: str  # source name
    batch: str  # batch label
    status: CanaryStatus
    identity: Identity
    placement: Placement | None
    created_at: datetime
    planted_at: datetime | None = None
    verified_at: datetime | None = None
    verify_state: VerifyState | None = None
    verify_details: tuple[str, ...] = ()
    retired_at: datetime | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SourceSummary:
    """A source with its canary counts, for ``canary source list``."""

    spec: SourceSpec
    created_at: datetime
    counts: dict[CanaryStatus, int] = field(default_factory=dict)  # every status, 0 if none
    last_planted: datetime | None = None
    last_verified: datetime | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def live(self) -> int:
        """Canaries still (meant to be) in the target: planned, planted or missing."""
        return sum(n for status, n in self.counts.items() if status is not CanaryStatus.RETIRED)


def fold(kind: TokenKind, value: str) -> str:
    """The stored form of a token value: trimmed, one case.

    NIR in upper case (its 2A/2B Corsican départements), everything else in
    lower case, as ``canary.tokens.normalise`` writes them. Full normalisation
    (phone to E.164, NIR spacing...) is that module's job and callers pass
    normalised values; folding case here keeps lookups and the unique
    constraint case-insensitive on every engine.
    """
    value = value.strip()
    return value.upper() if kind is TokenKind.NIR else value.lower()


def fold_any(value: str) -> set[str]:
    """Every stored form a value of unknown kind may have."""
    value = value.strip()
    return {value.lower(), value.upper()}


def token_kind(kind: TokenKind | str) -> TokenKind:
    return kind if isinstance(kind, TokenKind) else TokenKind(kind)


def source_row(spec: SourceSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "seeder": spec.seeder,
        "url_env": spec.url_env,
        "url": spec.url,
        "mapping": spec.mapping,
        "options": dict(spec.options),
        "establishment": spec.establishment,
        "tenant": spec.tenant,
        "alert_to": list(spec.alert_to),
        "catchment": list(spec.catchment),
    }


def source_from_row(row: Mapping[str, Any]) -> SourceSpec:
    return SourceSpec(
        name=row["name"],
        seeder=row["seeder"],
        url_env=row["url_env"],
        url=row["url"],
        mapping=row["mapping"],
        options=dict(row["options"] or {}),
        establishment=row["establishment"],
        tenant=row["tenant"],
        alert_to=tuple(row["alert_to"] or ()),
        catchment=tuple(row["catchment"] or ()),
    )


def batch_from_row(row: Mapping[str, Any]) -> Batch:
    return Batch(
        id=row["id"],
        label=row["label"],
        source=row["source"],
        created_at=row["created_at"],
        operator=row["operator"],
        planned=row["planned"],
        kind=row["kind"],
        planted=row["planted"],
        note=row["note"],
    )


def canary_from_row(row: Mapping[str, Any]) -> CanaryRecord:
    placement = row["placement"]
    state = row["verify_state"]
    return CanaryRecord(
        id=row["id"],
        source=row["source"],
        batch=row["batch"],
        status=CanaryStatus(row["status"]),
        identity=Identity.from_dict(row["identity"]),
        placement=Placement.from_dict(placement) if placement is not None else None,
        created_at=row["created_at"],
        planted_at=row["planted_at"],
        verified_at=row["verified_at"],
        verify_state=VerifyState(state) if state is not None else None,
        verify_details=tuple(row["verify_details"] or ()),
        retired_at=row["retired_at"],
        note=row["status_note"],
    )
