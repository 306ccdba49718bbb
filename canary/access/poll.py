"""`canary access poll`: read the new rows of each source's audit tables and record canary reads.

Run from the admin host (which holds the target credentials; the listener
never does), by a timer like ``canary drip run``, with a read-only account.
For each audit table of a source (canary/access/auditdb.py):

* read from the row after the stored position (registry ``access_positions``);
  a first poll starts at the rows written since the source's first canary was
  planted (nothing older can name one);
* turn each row naming a patient into an AccessEvent (audit source: the
  source itself, so its patient numbers match) and record it
  (``AccessRecorder``: one hit per canary, none for ordinary patients);
* move the position after each page is recorded: a crash reads a page
  again rather than miss a row.

Canary's own work is never reported: an audit row a seeder wrote itself (it
is in a canary's placement, as Mediboard's history entries are) is skipped;
so is a row written under the source's own
database account (the one plant, verify and retire use) within OWN_MARGIN of
a moment the registry knows canary touched that source (a canary created,
planted, verified or retired) is counted as ``own`` and skipped. The same
account at any other moment is reported: someone using it by hand is what
this is for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from canary.access import auditdb
from canary.access.event import AccessEvent, PatientRef
from canary.access.record import AccessRecorder
from canary.errors import ConfigError
from canary.model import SourceSpec

if TYPE_CHECKING:
    from canary.registry import Registry

log = logging.getLogger(__name__)

OWN_MARGIN = timedelta(minutes=10)
PAGE = 5000


@dataclass
class TablePoll:
    table: str
    start: int
    position: int
    rows: int = 0  # rows naming a patient that were read
    own: int = 0  # canary's own rows, skipped
    hits: list[int] = field(default_factory=list)
    bulk: int = 0  # of which bulk access

    def to_dict(self) -> dict:
        return {"table": self.table, "from": self.start, "position": self.position, "rows": self.rows,
                "own": self.own, "hits": list(self.hits), "bulk": self.bulk}


@dataclass
class SourcePoll:
    source: str
    tables: list[TablePoll] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"source": self.source, "tables": [t.to_dict() for t in self.tables]}


def pollable(registry: "Registry", base_dir: Path | None, name: str | None = None) -> list[SourceSpec]:
    """The sources with audit tables (all of them, or ``name``, which must have some)."""
    if name is not None:
        spec = registry.get_source(name)
        if not auditdb.audit_tables(spec.seeder, spec.mapping, base_dir):
            raise ConfigError(f"source '{name}' has no audit table to poll: built in for "
                              f"{', '.join(sorted(auditdb.BUILTIN))}; sql sources name one in their "
                              "mapping file's [audit] table (see docs/access.md)")
        return [spec]
    return [s.spec for s in registry.list_sources()
            if auditdb.audit_tables(s.spec.seeder, s.spec.mapping, base_dir)]


def poll_source(registry: "Registry", spec: SourceSpec, url: str, recorder: AccessRecorder, zone: tzinfo,
                base_dir: Path | None = None, own_account: str | None = None) -> SourcePoll:
    """Poll one source's audit tables through ``url``; ``own_account``: the database account
    canary's seeder uses there (default: the account of ``url``)."""
    from canary.dsn import redact

    tables = auditdb.audit_tables(spec.seeder, spec.mapping, base_dir)
    recorder.book.sources.setdefault(spec.name, spec.name)  # its rows name its own patients
    if own_account is None:
        own_account = sa.engine.make_url(url).username
    moments = registry.own_moments(spec.name)
    written, objects = _seeded_rows(registry, spec.name)
    result = SourcePoll(spec.name)
    engine = sa.create_engine(url, poolclass=NullPool, **_connect_args(url))
    try:
        with engine.connect() as connection:
            for table in tables:
                if not auditdb.exists(connection, table):
                    if table.optional:
                        continue
                    raise ConfigError(f"source '{spec.name}': audit table {table.name} not found")
                result.tables.append(_poll_table(registry, spec.name, connection, table, recorder, zone,
                                                 own_account, moments, written.get(table.name, frozenset()),
                                                 objects))
            if tables and not result.tables:
                raise ConfigError(f"source '{spec.name}': none of its audit tables was found "
                                  f"({', '.join(t.name for t in tables)}): see docs/access.md")
    except sa.exc.SQLAlchemyError as err:
        reason = type(getattr(err, "orig", None) or err).__name__
        raise ConfigError(f"source '{spec.name}': cannot read its audit tables at {redact(url)} ({reason}): "
                          "check the URL and that the account may SELECT them") from None
    finally:
        engine.dispose()
    return result


def _poll_table(registry: "Registry", source: str, connection: sa.Connection, table: auditdb.AuditTable,
                recorder: AccessRecorder, zone: tzinfo, own_account: str | None,
                moments: Sequence[datetime], written: frozenset[str] = frozenset(),
                objects: Mapping[tuple[str, str], str] | None = None) -> TablePoll:
    stored = registry.access_position(source, table.name)
    if stored is not None:
        after = int(stored)
    else:
        first = registry.first_planted(source)
        # A table whose times are rounded down (Mediboard's access log: to the hour by default)
        # dates a read after the planting up to a rounding earlier.
        since = first - OWN_MARGIN - table.rounding if first is not None else None
        after = (auditdb.first_id_since(connection, table, auditdb.naive_local(since, zone))
                 if since is not None else auditdb.last_id(connection, table))
    kinds = auditdb.classes(connection, table)
    poll = TablePoll(table.name, after, after)
    while True:
        rows = auditdb.read_rows(connection, table, after, PAGE, kinds)
        for row in rows:
            after = int(row[table.id])
            event = auditdb.row_event(table, row, source, zone)
            if event is None:
                continue
            poll.rows += 1
            if str(row[table.id]) in written or _own(event, own_account, moments):
                poll.own += 1
                continue
            event = _patient_of(event, objects or {})
            if event is None:  # a stay, consultation or operation of no canary
                continue
            for hit in recorder.record(event):
                poll.hits.append(hit.id)
                poll.bulk += hit.classification.value == "bulk-access"
        if rows or stored is None:
            registry.set_access_position(source, table.name, str(after))
            stored = str(after)
        poll.position = after
        if len(rows) < PAGE:
            return poll


def _seeded_rows(registry: "Registry", source: str) -> tuple[dict[str, frozenset[str]], dict[tuple[str, str], str]]:
    """(audit rows a seeder wrote itself (a Mediboard canary's history entries): table -> row ids,
    each row a seeder wrote: (table, row id) -> the id of its canary's patient row)."""
    from canary.model import CanaryStatus

    found: dict[str, set[str]] = {}
    objects: dict[tuple[str, str], str] = {}
    for canary in registry.list_canaries(source=source, status=list(CanaryStatus)):
        rows = canary.placement.rows if canary.placement else ()
        patient = next(iter((rows[0].get("key") or {}).values()), None) if rows else None
        for row in rows:
            key = row.get("key") or {}
            if len(key) == 1:
                row_id = str(next(iter(key.values())))
                found.setdefault(str(row.get("table")), set()).add(row_id)
                if patient is not None:
                    objects[(str(row.get("table")), row_id)] = str(patient)
    return {table: frozenset(ids) for table, ids in found.items()}, objects


def _patient_of(event: AccessEvent, objects: Mapping[tuple[str, str], str]) -> AccessEvent | None:
    """A Mediboard row about a patient, stay, consultation or operation names a canary only when
    its seeder wrote that object: the event then names the canary's patient row; otherwise None
    (an ordinary patient's)."""
    refs = []
    for ref in event.patients:
        if ref.authority and ref.authority.startswith(auditdb.OBJECT):
            table = auditdb.MEDIBOARD_CLASSES.get(ref.authority.removeprefix(auditdb.OBJECT))
            patient = objects.get((table or "", ref.value))
            if patient is not None:
                refs.append(PatientRef(patient))
        else:
            refs.append(ref)
    return replace(event, patients=tuple(refs)) if refs else None


def _own(event: AccessEvent, account: str | None, moments: Sequence[datetime]) -> bool:
    if not account or event.user != account or event.at is None:
        return False
    return any(abs(event.at - moment) <= OWN_MARGIN for moment in moments)


def _connect_args(url: str) -> dict:
    # Fail in seconds on an unreachable server rather than hang on the OS timeout.
    backend = sa.engine.make_url(url).get_backend_name()
    if backend in ("postgresql", "mysql", "mariadb") and "connect_timeout" not in sa.engine.make_url(url).query:
        return {"connect_args": {"connect_timeout": 10}}
    return {}


def run_poll(registry: "Registry", config, source: str | None = None, environ=None) -> list[SourcePoll]:
    """``canary access poll``: every pollable source (or one), alerts queued and sent once."""
    import os

    from canary.access.config import AccessConfig
    from canary.access.record import AccessBook
    from canary.alerts.service import build_alerting, build_hit_sink

    environ = os.environ if environ is None else environ
    access = AccessConfig.from_table(config.raw.get("access"))
    specs = pollable(registry, config.base_dir, source)
    urls = {spec.name: poll_url(spec, access, environ) for spec in specs}  # every URL before any work
    alerting = build_alerting(registry, config.raw, environ)
    sink, _ = build_hit_sink(registry, config.raw, alerting)
    book = AccessBook(registry, dict(access.sources))
    book.reload()
    recorder = AccessRecorder(sink, book, access)
    recorder.prime()
    results = [poll_source(registry, spec, urls[spec.name][0], recorder, access.zone, config.base_dir,
                           own_account=urls[spec.name][1]) for spec in specs]
    if any(t.hits for r in results for t in r.tables):
        alerting.worker.run_once()  # deliver now; what fails stays in the outbox for the listener
    return results


def poll_url(spec: SourceSpec, access, environ) -> tuple[str, str | None]:
    """(URL the audit tables are read with, the seeder's own database account there).

    The read-only account named by ``access.audit_url_env`` when there is one; else the
    source's own URL (the seeder's account, which may write), with a warning.
    """
    from canary.dsn import resolve_url

    variable = access.audit_url_env.get(spec.name)
    if variable is None:
        log.warning("source '%s': its audit tables are read with the seeder's account; give a read-only "
                    "one in [access.audit_url_env] (see docs/access.md)", spec.name,
                    extra={"event": "access-poll-own-account"})
        url = resolve_url(spec, environ)
        return url, sa.engine.make_url(url).username
    url = environ.get(variable)
    if not url:
        raise ConfigError(f"source '{spec.name}': environment variable {variable} (access.audit_url_env) is not set")
    try:
        sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"source '{spec.name}': {variable} does not hold a database URL") from None
    try:
        own = sa.engine.make_url(resolve_url(spec, environ)).username
    except ConfigError:  # the seeder's URL is not in this environment: its account as registered, if any
        own = sa.engine.make_url(spec.url).username if spec.url else None
    return url, own
