"""``[[related]]`` in a mapping: one-to-many rows per canary (results, visits, accounts), a footprint.

A real patient is never a lone row: a laboratory holds their analyses, an
EHR their visits. A ``[[related]]`` table names such a table, the column
linking it to the patient key, and how its rows come:

- ``rows``: how many rows per event, by default drawn from the site's own
  distribution (rows per patient and ``when`` date, or per patient);
- ``share``: the share of canaries that have such rows at all, by default
  the site's (18 % of patients with a portal account: 18 % of canaries);
- ``at``: ``registration`` (written with the patient), ``events`` (with the
  patient, then again at each drip event: a new result every few weeks), or
  ``later`` (once, at the first drip event: an account opened days after the
  registration, never in its second).

Its columns take the same sources as a ``[[table]]``'s, ``now`` being the
moment of the event. The format is described in docs/seeders.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from canary.model import Identity
from seeders.sql.columns import ColumnSpec
from seeders.sql.rows import Ref

AT_KINDS = ("registration", "events", "later")
RELATED_KEYS = frozenset({"link", "when", "rows", "share", "at", "events"})


@dataclass(frozen=True, slots=True)
class RelatedSpec:
    table: Any  # the mapping's TableSpec (parsed by seeders/sql/mapping.py, which imports this module)
    link: str  # column holding the patient key
    patient: Ref  # the patient table's alias and key column
    when: str | None = None  # column dating the rows: rows of one patient on one date are one event
    rows: int | None = None  # rows per event; None: drawn from the site
    share: float | None = None  # share of canaries with such rows; None: the site's
    at: str = "registration"  # one of AT_KINDS
    events: int | None = None  # drip events a canary gets here at most; None: drawn from the site's patients

    @property
    def alias(self) -> str:
        return self.table.alias

    def chosen(self, identity: Identity, share: float) -> bool:
        """Whether this canary is among the ``share`` that have rows here (stable across runs)."""
        return share >= 1 or self.uniform(identity, "share") < share

    def uniform(self, identity: Identity, purpose: str) -> float:
        """A number in [0, 1) drawn for this canary, table and purpose, the same at every run."""
        seed = f"{self.alias}:{purpose}:{identity.nir}:{identity.portal_login}:{identity.birth_date}".encode()
        return int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") / 2 ** 64


def parse_related(raw: Any, tables: list, parse_table, fail) -> tuple[RelatedSpec, ...]:
    """The ``[[related]]`` entries, checked against the ``[[table]]`` ones parsed before."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise fail("related must be [[related]] tables")
    patient = next((t for t in tables if not any(c.source == "ref" for c in t.columns)), None)
    if patient is None or len(patient.key) != 1:
        raise fail("[[related]] needs a patient table: a first [[table]] with a one-column key and no ref")
    key = patient.column(patient.key[0])
    out: list[RelatedSpec] = []
    for entry in raw:
        name = entry.get("name") if isinstance(entry.get("name"), str) else None
        link = entry.get("link")
        if not isinstance(link, str) or not link:
            raise fail("needs link = \"COLUMN\": the column holding the patient's key", name)
        link_spec = ColumnSpec(name=link, source="ref", ref=Ref(patient.alias, key.name), kind=key.kind)
        table = parse_table(entry, [*tables, *(r.table for r in out)], fail, section="related",
                            more_keys=RELATED_KEYS, link=link_spec)
        for column in table.columns:
            if column.source == "ref" and column.ref.alias != patient.alias:
                raise fail(f"a related row may only ref the patient table '{patient.alias}'",
                           table.alias, column.name)
        when = entry.get("when")
        if when is not None and table.column(when) is None:
            raise fail(f"when = {when!r} must be a mapped column (usually {{ now = \"date\" }})", table.alias)
        at = entry.get("at", "events" if when else "registration")
        if at not in AT_KINDS:
            raise fail(f"unknown at {at!r} (known: {', '.join(AT_KINDS)})", table.alias)
        out.append(RelatedSpec(table=table, link=link, patient=Ref(patient.alias, key.name), when=when,
                               rows=_rows(entry.get("rows", "site"), table.alias, fail),
                               share=_share(entry.get("share", "site"), table.alias, fail), at=at,
                               events=_events(entry.get("events", "site"), when, table.alias, fail)))
    return tuple(out)


def _rows(value: Any, alias: str, fail) -> int | None:
    if value == "site":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise fail("rows must be \"site\" (the site's rows per event) or a whole number >= 1", alias)


def _events(value: Any, when: str | None, alias: str, fail) -> int | None:
    if value == "site":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise fail("events must be \"site\" (as many later events as the site's patients have) or a whole number",
               alias)


def _share(value: Any, alias: str, fail) -> float | None:
    if value == "site":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    raise fail("share must be \"site\" (the site's share of patients with such rows) or a number from 0 to 1",
               alias)
