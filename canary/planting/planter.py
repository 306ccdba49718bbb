"""Planting: identity -> tokens -> seeder.plant -> registry.

Safe ordering, so that a crash at any point leaves nothing `canary verify`
cannot reconcile:

1. draw identities, skipping any that collide with a patient already in the
   target (same NIR, or same name + birth date);
2. ask the seeder whether every value fits, before writing anything;
3. per canary: record it as *planned* with its tokens (registry commit), insert
   it in the target (one transaction), then mark it *planted* with its
   placement (registry commit). A crash between the last two steps leaves a
   planned canary that `verify` finds in the target (``seeder.locate``) or
   retires as never planted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterator

from canary.config import Config
from canary.errors import CanaryError, SourceError
from canary.model import CanaryStatus, Identity, SourceSpec, TokenKind
from canary.planting.seeder import PlannedRow, Seeder

# How many fresh identities we draw per wanted canary before concluding that
# the target is full of look-alikes (it never happens with real data).
MAX_DRAWS_PER_CANARY = 20

Progress = Callable[[int], None]  # called with the number of canaries just done


@dataclass
class PlantResult:
    source: str
    batch: str | None
    canary_ids: list[int] = field(default_factory=list)
    redrawn: int = 0  # identities dropped because they collided with a real patient
    dry_run: bool = False
    plans: list[tuple[Identity, list[PlannedRow]]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # the seeder's lines for the user (Seeder.notices)

    @property
    def count(self) -> int:
        return len(self.plans) if self.dry_run else len(self.canary_ids)


def open_seeder(spec: SourceSpec, environ=os.environ) -> Seeder:
    """Resolve the source's URL from the environment and connect its seeder."""
    from canary.dsn import resolve_url
    from canary.planting.catalog import create_seeder

    seeder = create_seeder(spec, resolve_url(spec, environ))
    seeder.open()
    return seeder


def plant(
    registry,
    config: Config,
    source_name: str,
    count: int,
    *,
    batch_label: str | None = None,
    dry_run: bool = False,
    allow_demo: bool = False,
    seed: int | None = None,
    batch_kind: str = "manual",
    progress: Progress | None = None,
    environ=os.environ,
    seeder: Seeder | None = None,
) -> PlantResult:
    """Plant ``count`` canaries into one source, in one batch.

    ``seeder``: the source's seeder already open (a drip run that also asked it
    for the site's pace); it is left open. Otherwise one is opened and closed.
    """
    if count < 1:
        raise CanaryError("--count must be at least 1")
    spec = registry.get_source(source_name)
    if not allow_demo:
        config.contacts.require_production()
    owned = seeder is None
    if seeder is None:
        seeder = open_seeder(spec, environ)
    try:
        if type(seeder).set_own_rows is not Seeder.set_own_rows:  # the registry read only for a seeder that uses it
            seeder.set_own_rows(_own_rows(registry, spec.name))
        identities, redrawn = _draw(registry, config, spec, seeder, count, seed)
        seeder.check_fits(identities)
        result = PlantResult(source=spec.name, batch=None, redrawn=redrawn, dry_run=dry_run)
        if dry_run:
            result.plans = [(identity, seeder.plan(identity)) for identity in identities]
            return result
        batch = registry.new_batch(spec.name, batch_label, config.operator, count, kind=batch_kind)
        result.batch = batch.label
        for identity in identities:
            result.canary_ids.append(_plant_one(registry, seeder, batch, identity))
            if progress:
                progress(1)
        result.notices = seeder.notices()
        return result
    finally:
        if owned:
            seeder.close()


def _own_rows(registry, source: str) -> set[tuple[str, frozenset]]:
    """(table, key items) of every row the source's live canaries placed (Seeder.set_own_rows)."""
    live = (CanaryStatus.PLANTED, CanaryStatus.MISSING)
    records = registry.list_canaries(source=source, status=live)
    return {(row["table"], frozenset(row["key"].items())) for record in records
            for row in (record.placement.rows if record.placement else ()) if row.get("key")}


def _plant_one(registry, seeder: Seeder, batch, identity: Identity) -> int:
    from canary.tokens import tokens_of

    record = registry.add_planned(batch, identity, tokens_of(identity))
    try:
        placement = seeder.plant(identity)
    except CanaryError as err:
        # The seeder's transaction rolled back: nothing is in the target.
        registry.set_status(record.id, CanaryStatus.RETIRED, f"plant failed: {err}")
        raise
    except Exception as err:  # a driver error mid-insert; keep the registry honest
        registry.set_status(record.id, CanaryStatus.RETIRED, f"plant failed: {type(err).__name__}")
        raise SourceError(f"source '{seeder.source.name}': insert failed ({type(err).__name__}); "
                          "nothing was kept, see `canary verify`") from err
    registry.mark_planted(record.id, placement)
    return record.id


def _draw(registry, config: Config, spec: SourceSpec, seeder: Seeder, count: int,
          seed: int | None) -> tuple[list[Identity], int]:
    from canary.identity.ages import site_age_profile
    from canary.identity.generator import IdentityGenerator

    generator = IdentityGenerator(
        config.contacts,
        seed=seed,
        # identities.age_profile wins; otherwise canaries are as old as the site's new patients were
        age_profile=config.age_profile or site_age_profile(seeder.site_ages()),
        catchment=spec.catchment,
        reserved=registry.is_taken,
        taken_phones=registry.taken_values(TokenKind.PHONE),
        reserve_phones=True,
        in_use=contact_points_in_use(registry, spec.name),
        # --catchment wins; otherwise addresses follow where the site's own patients live
        site_postcodes=None if spec.catchment else seeder.site_postcodes(),
    )
    chosen: list[Identity] = []
    redrawn = 0
    draws = _identities(generator)
    while len(chosen) < count:
        if redrawn > MAX_DRAWS_PER_CANARY * count:
            raise SourceError(f"source '{spec.name}': too many drawn identities match existing patients; "
                              "check the seeder's [match] columns")
        identity = next(draws)
        if seeder.collides(identity):
            redrawn += 1
            continue
        chosen.append(identity)
    return chosen, redrawn


def contact_points_in_use(registry, source: str) -> list[str]:
    """Emails and phone numbers of the source's live canaries (per-domain and per-block caps count them)."""
    live = (CanaryStatus.PLANNED, CanaryStatus.PLANTED, CanaryStatus.MISSING)
    values = []
    for record in registry.list_canaries(source=source, status=live):
        identity = record.identity
        values += [v for v in (identity.email, identity.phone, identity.phone2) if v]
    return values


def _identities(generator) -> Iterator[Identity]:
    while True:
        yield generator.generate()
