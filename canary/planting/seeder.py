"""The seeder interface: how canaries get into (and out of) a target system.

One seeder instance serves one source for the duration of a command. The
planting orchestrator (``canary.planting.planter``) drives it as:

    seeder.open()                       # connect, check reachability and fit
    seeder.check_fits(identities)       # every planned value fits, before any write
    for identity in identities:
        if seeder.collides(identity):   # a real patient with the same NIR / name+DOB
            draw another identity
        registry: record canary as planned
        placement = seeder.plant(identity)   # one transaction in the target
        registry: mark planted with placement
    seeder.close()

A seeder touches only the rows it adds: ``retire`` deletes exactly the rows
listed in the placement, ``verify`` only reads them.

Read-only questions about the site, each answered ``None`` ("this seeder
cannot tell") unless the seeder knows how (SQL seeders do, through
``seeders/sql/siteread.py``):

    seeder.patients_for_audit(limit)   # per-patient rows for `canary audit --separability`
    seeder.admissions_since(moment)    # creation times of patients since then (drip pace)
    seeder.site_postcodes(limit)       # postcodes of recent patients (drip catchment)
    seeder.site_ages(limit)            # ages at registration of recent patients (age profile)

and one write hook for drip: ``seeder.add_event(identity, placement, when)``
adds a later event (a visit, a result) to a planted canary and returns the
placement with the new rows, or None when the seeder does not support it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from collections import Counter
from datetime import datetime
from typing import Any, ClassVar, Iterable, Iterator

from canary.model import Identity, Placement, SourceSpec, VerifyResult


@dataclass(frozen=True, slots=True)
class SeederOption:
    """A seeder-specific setting given with ``canary source add --set KEY=VALUE``."""

    name: str
    help: str
    default: Any = None
    required: bool = False


@dataclass(frozen=True, slots=True)
class PlannedRow:
    """One row a seeder would write for an identity (``--dry-run`` shows these)."""

    table: str
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditPatient:
    """One patient of the target as ``canary audit --separability`` reads it.

    ``ref`` names the patient row the way a placement row does: (table, key
    column -> value, JSON-like), so the audit can tell which rows are ours
    from the registry alone. ``values`` is the patient row as stored;
    ``related`` counts the rows of each related table pointing at it and
    ``related_first`` the earliest timestamp among them (None: no timestamp);
    ``contacts`` the emails and phone numbers found in those rows.
    """

    ref: tuple[str, tuple[tuple[str, Any], ...]]
    values: dict[str, Any]
    related: dict[str, int]
    related_first: dict[str, datetime | None]
    created: datetime | None = None  # when the application registered the patient, when known
    contacts: tuple[str, ...] = ()  # emails and phone numbers held in related rows (contact tables)


class Seeder(ABC):
    """Base class of every seeder. Subclasses register under ``name``."""

    #: Name used with ``canary source add --seeder NAME``.
    name: ClassVar[str]
    #: One line for ``canary source add --help`` and docs.
    summary: ClassVar[str] = ""
    #: Settings accepted through ``--set``; a test checks each is documented.
    options: ClassVar[tuple[SeederOption, ...]] = ()
    #: Whether ``source add`` must be given ``--mapping``.
    needs_mapping: ClassVar[bool] = False

    def __init__(self, source: SourceSpec, url: str) -> None:
        # ``url`` may hold a password (taken from the environment): never log
        # it or put it in an error message; use ``canary.dsn.redact``.
        self.source = source
        self.url = url

    @classmethod
    def validate_options(cls, options: dict[str, str]) -> dict[str, Any]:
        """Check ``--set`` values at ``source add`` time; return them typed."""
        known = {opt.name: opt for opt in cls.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            from canary.errors import ConfigError

            names = ", ".join(sorted(known)) or "none"
            raise ConfigError(
                f"seeder {cls.name!r} has no option {unknown[0]!r} (known: {names})"
            )
        return dict(options)

    def option(self, name: str) -> Any:
        for opt in self.options:
            if opt.name == name:
                return self.source.options.get(name, opt.default)
        raise KeyError(name)

    # -- lifecycle -------------------------------------------------------
    @abstractmethod
    def open(self) -> None:
        """Connect and check that the target fits; raise SourceError/MappingError."""

    def close(self) -> None:
        """Release connections. Safe to call twice."""

    def __enter__(self) -> "Seeder":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_access(self) -> list[str]:
        """What would stop plant, verify or retire, found without writing (``canary doctor``).

        Called after ``open()``, which already proved the target reachable and
        fitting; one line per problem. SQL seeders add the rights their account
        needs on the tables they write (seeders.sql.access); the default finds
        nothing more to check.
        """
        return []

    def refresh(self) -> None:
        """Before another planting by a caller that keeps the seeder open (a drip run's pace check,
        plantings and later events): re-read what ``open()`` learnt from the site if the site has
        changed since, so each planting draws from the site as a fresh ``open()`` would see it.

        The default does nothing (the seeder learns nothing from the site at open()). Within one
        ``plant --count N`` the seeder is not refreshed: its canaries draw from one reading.
        """

    def set_own_rows(self, refs: set[tuple[str, frozenset]]) -> None:
        """The rows this source's live canaries placed, as (table, key items) (canary.audit.site.placed_refs),
        given by the planter before it plants: a seeder that lends values from the site's recent patients
        lends them from real patients only, never from an earlier canary (a copy of a copy makes canaries
        alike). The default ignores them."""

    def notices(self) -> list[str]:
        """Lines the user must read after planting (e.g. the canaries are not searchable yet); one each."""
        return []

    # -- planting --------------------------------------------------------
    @abstractmethod
    def plan(self, identity: Identity) -> list[PlannedRow]:
        """The rows ``plant`` would write, without writing (keys may be None)."""

    def check_fits(self, identities: Iterable[Identity]) -> None:
        """Raise MappingError if any planned value does not fit, before any write."""
        for identity in identities:
            self.plan(identity)

    @abstractmethod
    def collides(self, identity: Identity) -> bool:
        """True if the target already has a patient with this NIR or name + birth date."""

    @abstractmethod
    def plant(self, identity: Identity) -> Placement:
        """Write the patient in one transaction (all rows or none)."""

    @abstractmethod
    def locate(self, identity: Identity) -> Placement | None:
        """Find a patient planted for this identity whose placement was never recorded."""

    @abstractmethod
    def verify(self, identity: Identity, placement: Placement) -> VerifyResult:
        """Read the planted rows back; report missing or altered."""

    @abstractmethod
    def retire(self, placement: Placement) -> None:
        """Delete exactly the rows of ``placement`` (in reverse order), in one transaction."""

    # -- reading the site (read only) ---------------------------------------
    def patients_for_audit(self, limit: int | None = None) -> Iterator[AuditPatient] | None:
        """Every patient (the ``limit`` most recent ones), for the separability audit; None: unsupported."""
        return None

    def admissions_since(self, since: datetime) -> list[datetime] | None:
        """When each patient created after ``since`` was registered (canaries included); None: unsupported."""
        return None

    def site_postcodes(self, limit: int = 5000) -> Counter[str] | None:
        """Postcodes of the ``limit`` most recent patients, counted; None: unsupported."""
        return None

    def site_ages(self, limit: int = 5000) -> Counter[int] | None:
        """Ages at registration of the ``limit`` most recent patients, counted; None: unsupported."""
        return None

    # -- a life over time ------------------------------------------------
    def add_event(self, identity: Identity, placement: Placement, when: datetime) -> Placement | None:
        """Add a later event (visit, result...) to a planted canary, dated ``when``.

        Returns the placement with the new rows appended (retire removes them
        with the rest), or None when this seeder writes no events.
        """
        return None

    def add_due(self, identity: Identity, placement: Placement, when: datetime) -> Placement | None:
        """Write what this seeder set due in the placement (``canary.planting.events.DUE_KEY``) by ``when``,
        never dated after it, and set the next such time in the returned placement's extra (or remove it).
        None: nothing to write (the due time is then dropped). The default writes nothing."""
        return None

    def writes_events(self) -> bool:
        """Whether ``add_event`` writes anything for this source, once open (a mapping may name no event table)."""
        return type(self).add_event is not Seeder.add_event
