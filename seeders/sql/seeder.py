"""The generic SQL seeder: plant patients into any tables described by a mapping file.

The mapping (``source.mapping``, TOML, see docs/seeders.md) says which
identity field goes into which column of which table, written how. Rows of
one patient are inserted in one transaction, verified by key and deleted by
key; the database work itself is ``SqlTarget``'s, shared with the seeders
written for a given application.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from canary.errors import MappingError
from canary.model import Identity, Placement, SourceSpec
from seeders.sql.appseeder import TargetSeeder
from seeders.sql.footprint import Site, event_rows, learn_site
from seeders.sql.mapping import Mapping, load_mapping
from seeders.sql.rows import SEQUENCE, RowPlan
from seeders.sql.access import access_problems, needs
from seeders.sql.siteread import PatientLayout, site_stamp
from seeders.sql.target import Problem, SqlTarget
from seeders.sql.values import comparable, to_json


class SqlSeeder(TargetSeeder):
    name = "sql"
    summary = "Any SQL database (SQLite, MariaDB/MySQL, PostgreSQL) through a TOML mapping file."
    needs_mapping = True

    def __init__(self, source: SourceSpec, url: str) -> None:
        super().__init__(source, url)
        self.mapping: Mapping | None = None
        self._site: Site | None = None  # learnt at the first write; again at refresh() if the site changed
        self._site_stamp: tuple | None = None  # the tables' rows and highest keys when it was learnt
        self._rnd = random.Random()

    # -- lifecycle -------------------------------------------------------
    def open(self) -> None:
        self.close()  # opening twice must not leak the first connection pool
        if not self.source.mapping:
            raise MappingError(f"source '{self.source.name}' has no mapping file: re-add it with --mapping FILE")
        mapping = load_mapping(self.source.mapping)
        target = SqlTarget(self.source.name, self.url, schema=mapping.schema)
        target.connect()
        try:
            problems = [(table.alias, p) for table in _every_table(mapping)
                        for p in target.structure_problems(
                            table.name, table.key, table.kinds(), table.generated(),
                            unique_by_construction=[c.name for c in table.columns if c.source == "generate"])]
            self._raise_first(mapping, problems)
        except BaseException:
            target.close()
            raise
        self.mapping, self.target, self._site, self._site_stamp = mapping, target, None, None

    def check_access(self) -> list[str]:
        mapping, target = self._ready()
        sequences = [gen.sequence for table in _every_table(mapping) for gen in table.generated().values()
                     if gen.kind == SEQUENCE and gen.sequence]
        return access_problems(target, needs(table.name for table in _every_table(mapping)), sequences=sequences)

    def _ready(self) -> tuple[Mapping, SqlTarget]:
        if self.mapping is None or self.target is None:
            raise RuntimeError("SqlSeeder.open() was not called")
        return self.mapping, self.target

    def _raise_first(self, mapping: Mapping, problems: list[tuple[str, Problem]]) -> None:
        """Raise the first problem as a MappingError naming the mapped table (alias)."""
        if not problems:
            return
        alias, first = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise mapping.error(alias, first.column, first.message + more)

    def _site_layout(self) -> PatientLayout | None:
        """The mapping's patient table (the first that refers to no other), its tables referring to it."""
        mapping, target = self._ready()
        patients = next((t for t in mapping.tables if not any(c.source == "ref" for c in t.columns)), None)
        if patients is None:
            return None
        table = target.table(patients.name)
        stamps = [c.name for c in patients.columns if c.source == "now"]
        timed = [n for n in stamps if table is not None and n in table.c
                 and isinstance(table.c[n].type, (sa.DateTime, sa.Date))]
        postcode = next((c.name for c in patients.columns if c.field == "address.postcode"), None)
        births = [c.name for c in patients.columns if c.field == "birth_date" and table is not None and c.name in table.c]
        # a DATE column first: a text one may hold any writing (`format`), read only when ISO
        births.sort(key=lambda n: not isinstance(table.c[n].type, (sa.Date, sa.DateTime)))
        related = []
        for spec in _every_table(mapping):
            for column in spec.columns:
                link = (spec.name, column.name)
                if (column.source == "ref" and column.ref.alias == patients.alias
                        and column.ref.column in patients.key and link not in related):
                    related.append(link)
        return PatientLayout(table=patients.name, key=patients.key, created=(timed or stamps or [None])[0],
                             postcode=postcode, related=tuple(related), birth=(births or [None])[0])

    # -- planting --------------------------------------------------------
    def _learnt(self) -> Site | None:
        """The site's values and paces, read once per open() (and refresh()), when the mapping draws from them."""
        mapping, target = self._ready()
        if self._site is None and (mapping.learns() or mapping.related):
            try:
                stamp = site_stamp(target, self._learnt_tables())
            except sa.exc.StatementError as err:
                raise target._failed("reading the site", err) from None
            self._site, self._site_stamp = learn_site(target, mapping, self._rnd), stamp
        return self._site

    def refresh(self) -> None:
        """Forget the site learnt when its tables changed since (rows added or removed, ours included).

        A drip run keeps the seeder open for its pace check, plantings and
        later events; each then learns from the site as a fresh open() would,
        the canaries planted before it included (as they were when every
        planting opened its own seeder).
        """
        if self._site is None:
            return
        _mapping, target = self._ready()
        try:
            changed = site_stamp(target, self._learnt_tables()) != self._site_stamp
        except sa.exc.StatementError as err:
            raise target._failed("reading the site", err) from None
        if changed:
            self._site = self._site_stamp = None

    def _learnt_tables(self) -> list[str]:
        """The tables ``learn_site`` reads: the patients, the tables drawing values, the related ones."""
        mapping, _target = self._ready()
        names = [mapping.patients.name]
        for table in _every_table(mapping):
            if (any(c.learns for c in table.columns) or table in [r.table for r in mapping.related]) \
                    and table.name not in names:
                names.append(table.name)
        return names

    def _checked_rows(self, identity: Identity, now: datetime | None = None) -> list[RowPlan]:
        """The registration's rows: the [[table]] rows, then the related rows written with the patient."""
        mapping, _target = self._ready()
        now = (now or datetime.now()).replace(microsecond=0)
        site = self._learnt()
        rows = mapping.rows(identity, now, site.values if site else None)
        for spec in mapping.related:
            if spec.at in ("registration", "events"):
                rows += event_rows(mapping, spec, identity, now, site, self._rnd)
        return self._fit(rows)

    def _fit(self, rows: list[RowPlan]) -> list[RowPlan]:
        mapping, target = self._ready()
        problems = [(row.name, p) for row in rows for p in target.value_problems(row)]
        self._raise_first(mapping, problems)
        return rows

    def _plan_rows(self, identity: Identity) -> list[RowPlan]:
        return self._checked_rows(identity)

    def check_fits(self, identities) -> None:
        """Registration rows, and the rows of every related table as if the canary had them, fit."""
        mapping, _target = self._ready()
        now = datetime.now().replace(microsecond=0)
        for identity in identities:
            self._checked_rows(identity, now)
            site = self._learnt()
            self._fit([row for spec in mapping.related if spec.at == "later"
                       for row in event_rows(mapping, spec, identity, now, site, self._rnd, every=True)])

    def plant(self, identity: Identity) -> Placement:
        rows = self._checked_rows(identity)
        return Placement(rows=self._ready()[1].insert(rows))

    def writes_events(self) -> bool:
        return any(spec.at in ("events", "later") for spec in self._ready()[0].related)

    def add_event(self, identity: Identity, placement: Placement, when: datetime) -> Placement | None:
        """A later event: the rows of the ``events`` related tables, and at the first event the ``later`` ones.

        Dated ``when`` in local time, as the mapping's ``now`` columns are.
        None when the mapping names no such table; the placement unchanged
        when this canary has none of them (it is not among their share).
        """
        mapping, target = self._ready()
        first = not placement.extra.get("drip_events")
        specs = [s for s in mapping.related if s.at == "events" or (s.at == "later" and first)]
        if not any(s.at in ("events", "later") for s in mapping.related):
            return None
        patient = next((r for r in placement.rows if r["table"] == mapping.patients.name), None)
        if patient is None:
            return None
        if when.tzinfo is not None:
            when = when.astimezone().replace(tzinfo=None)
        when = when.replace(microsecond=0)
        site = self._learnt()
        known = {**patient.get("values", {}), **patient.get("key", {})}
        specs = [s for s in specs if s.at == "later" or not self._events_done(s, placement, identity, site)]
        rows = [row for spec in specs for row in event_rows(mapping, spec, identity, when, site, self._rnd, known)]
        if not rows:
            return placement
        return replace(placement, rows=tuple(placement.rows) + target.insert(self._fit(rows)))

    def collides(self, identity: Identity) -> bool:
        mapping, target = self._ready()
        match = mapping.match
        lookups: list[tuple[str, list[str], list[str]]] = []  # (alias, columns, case-insensitive)
        if "nir" in match:
            lookups.append((match["nir"].alias, [match["nir"].column], []))
        if "last_name" in match:
            names = [match[k].column for k in ("last_name", "first_name") if k in match]
            lookups.append((match["last_name"].alias, names + [match["birth_date"].column], names))
        rows = {row.name: row for row in mapping.rows(identity)}
        for alias, columns, casefold in lookups:
            values = rows[alias].values
            if any(values[c] is None for c in columns):
                continue  # nothing to compare with
            if target.find(mapping.table(alias).name, {c: values[c] for c in columns}, casefold=casefold, limit=1):
                return True
        return False

    # -- after planting --------------------------------------------------
    def locate(self, identity: Identity) -> Placement | None:
        """Find the rows of a patient planted for ``identity`` but never recorded.

        The first [locate] column that finds exactly one row anchors the
        search; the other tables are reached through their refs, keeping
        only rows whose identity-derived values match (never a real row).
        """
        mapping, target = self._ready()
        plans = {row.name: row for row in mapping.rows(identity)}
        for anchor in mapping.locate:
            value = plans[anchor.alias].values[anchor.column]
            if value is None:
                continue
            found = target.find(mapping.table(anchor.alias).name, {anchor.column: value}, limit=2)
            if len(found) == 1:
                rows = self._follow_refs(mapping, target, plans, {anchor.alias: found[0]})
                placed = [self._placement_row(mapping, plans[t.alias], rows[t.alias])
                          for t in mapping.tables if t.alias in rows]
                return Placement(rows=tuple(placed + self._related_found(mapping, target, rows)))
        return None

    @staticmethod
    def _events_done(spec, placement: Placement, identity: Identity, site: Site) -> bool:
        """Whether the canary had as many later events in ``spec`` as it draws from the site's patients."""
        allowed = site.events(spec, identity)
        if allowed is None or spec.when is None:
            return False
        dates = {str(r["values"].get(spec.when)) for r in placement.rows if r["table"] == spec.table.name}
        return len(dates) - 1 >= allowed

    def _related_found(self, mapping: Mapping, target: SqlTarget, found: dict[str, dict[str, Any]]
                       ) -> list[dict[str, Any]]:
        """Every related row linked to the canary's patient row: all of them are the canary's own."""
        patient = found.get(mapping.patients.alias)
        if patient is None:
            return []
        placed = []
        for spec in mapping.related:
            for row in target.find(spec.table.name, {spec.link: patient[spec.patient.column]}):
                written = [c.name for c in spec.table.columns
                           if not (c.source == "generate" and c.generate == "autoincrement")]
                entry: dict[str, Any] = {"table": spec.table.name,
                                         "key": {k: to_json(row[k]) for k in spec.table.key},
                                         "values": {c: to_json(row[c]) for c in written}}
                unchecked = sorted(c.name for c in spec.table.columns if not c.verify or c.source == "now")
                if unchecked:
                    entry["unchecked"] = unchecked
                placed.append(entry)
        return placed

    def _follow_refs(self, mapping: Mapping, target: SqlTarget, plans: dict[str, RowPlan],
                     found: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        claimed = {(plans[a].table, _key(plans[a], row)) for a, row in found.items()}
        progress = True
        while progress:
            progress = False
            for table in mapping.tables:
                if table.alias in found:
                    continue
                row = self._find_linked(mapping, target, plans, table.alias, found, claimed)
                if row is not None:
                    found[table.alias] = row
                    claimed.add((table.name, _key(plans[table.alias], row)))
                    progress = True
        return found

    def _find_linked(self, mapping: Mapping, target: SqlTarget, plans: dict[str, RowPlan], alias: str,
                     found: dict[str, dict[str, Any]], claimed: set) -> dict[str, Any] | None:
        plan = plans[alias]
        links = {col: found[ref.alias][ref.column] for col, ref in plan.refs.items() if ref.alias in found}
        # Also the other way: an already found row that refers to this one.
        for other, row in found.items():
            for col, ref in plans[other].refs.items():
                if ref.alias == alias:
                    links[ref.column] = row[col]
        if not links:
            return None
        candidates = [row for row in target.find(plan.table, links)
                      if (plan.table, _key(plan, row)) not in claimed]
        if set(plan.key) <= set(links):
            # Reached by its key from a row of ours: ours even if edited since.
            return candidates[0] if len(candidates) == 1 else None
        table = target.table(plan.table)
        spec = mapping.table(alias)
        literal = {c: v for c, v in plan.values.items()
                   if c not in plan.unchecked and spec.column(c).deterministic}
        if literal:
            candidates = [row for row in candidates if all(
                comparable(table.c[c], row[c]) == comparable(table.c[c], v) for c, v in literal.items())]
        return candidates[0] if len(candidates) == 1 else None

    def _placement_row(self, mapping: Mapping, plan: RowPlan, row: dict[str, Any]) -> dict[str, Any]:
        written = [*plan.values, *plan.refs, *(c for c, g in plan.generated.items() if g.kind != "autoincrement")]
        placed: dict[str, Any] = {
            "table": plan.table,
            "key": {k: to_json(row[k]) for k in plan.key},
            "values": {c: to_json(row[c]) for c in written},
        }
        if plan.unchecked:
            placed["unchecked"] = sorted(plan.unchecked)
        return placed


def _key(plan: RowPlan, row: dict[str, Any]) -> tuple:
    return tuple(row[k] for k in plan.key)



def _every_table(mapping: Mapping) -> list:
    """The [[table]] and [[related]] tables, in insertion order."""
    return [*mapping.tables, *(spec.table for spec in mapping.related)]
