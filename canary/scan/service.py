"""The library behind ``canary scan``: load patterns, scan, attribute, alert.

    with Registry.open(url) as registry:
        report = scan(registry, ["leak.csv.gz"])
        for finding in report.sources:
            print(finding.source, len(finding.analysis.found), "of", finding.analysis.planted)

The command only formats what ``scan`` returns (``report.py``) and, with
``--alert``, calls ``raise_alerts``.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import marshal
import os
import platform
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canary.errors import CanaryError
from canary.registry import scanstore
from canary.scan import attribution, cache, engines, patterns
from canary.scan.result import MatchView, ScanReport, SourceFinding
from canary.scan.runner import RawScan, Runner
from canary.scan.shape import shape_of

if TYPE_CHECKING:
    from canary.registry import Registry

log = logging.getLogger(__name__)


def pattern_key(registry: "Registry", engine: str) -> str:
    version = ""
    if engine == "hyperscan":
        import hyperscan

        version = getattr(hyperscan, "__version__", "")
    return "|".join((f"v{patterns.PATTERN_VERSION}", engine, version, platform.machine(),
                     registry.url_redacted, scanstore.registry_stamp(registry)))


def load_patterns(registry: "Registry", *, engine: str | None = None, use_cache: bool = True,
                  cache_folder: Path | None = None) -> patterns.PatternSet:
    """The compiled pattern set of every canary, from the cache when the registry has not changed."""
    name = engines.pick(engine)
    key = pattern_key(registry, name)
    if use_cache and name == "hyperscan":
        cached = _from_cache(key, cache_folder)
        if cached is not None:
            return cached
    built = patterns.build(scanstore.pattern_rows(registry), name, key)  # streamed from the registry
    if not built.canaries:
        raise CanaryError("the registry holds no canary: nothing to look for (plant some with `canary plant`)")
    built.compile()
    built.literals = None  # compiled: the cache keeps the databases, not the 1.5M literals
    if use_cache and name == "hyperscan":
        cache.save(key, built.dumps(), cache_folder)
    return built


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off while a cached pattern set is loaded: the millions
    of tuples it unmarshals (checks, owners: 2.1 million literals at 100,000 canaries) made it
    run 22 full collections during the load, 2 s of a 2.5 s load on a busy machine. None of
    them is garbage."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _from_cache(key: str, folder: Path | None) -> patterns.PatternSet | None:
    payload = cache.load(key, folder)
    if payload is None:
        return None
    try:
        with _collector_paused():
            data = marshal.loads(payload)
            del payload  # 200 MB with 100,000 canaries: gone before the databases are loaded
            loaded = patterns.PatternSet.from_data(data)
            # Into the collector's permanent generation before it is on again: else the first
            # collection after the load walks the millions of new tuples (0.2 s at 100,000
            # canaries), the next ones again; the scan's Runner unfreezes them when it is done.
            gc.freeze()
            return loaded
    except Exception as err:  # another CPU, a damaged file: compile again
        log.info("scan cache not usable (%s): compiling", err)
        return None


def scan(registry: "Registry", paths: Sequence[str | os.PathLike], *, jobs: int | None = None,
         engine: str | None = None, use_cache: bool = True, cache_folder: Path | None = None,
         progress: Callable[[int], None] | None = None,
         pattern_set: patterns.PatternSet | None = None,
         on_unit: Callable | None = None) -> ScanReport:
    started = datetime.now(timezone.utc)
    for path in paths:
        if not Path(path).exists():
            raise CanaryError(f"{path}: no such file or folder")
    ps = pattern_set or load_patterns(registry, engine=engine, use_cache=use_cache, cache_folder=cache_folder)
    raw = Runner(ps, jobs=jobs, progress=progress, on_unit=on_unit).run([str(p) for p in paths])
    return build_report(registry, ps, raw, [str(p) for p in paths], started)


def build_report(registry: "Registry", ps: patterns.PatternSet, raw: RawScan, paths: list[str],
                 started: datetime) -> ScanReport:
    units = {u.id: u for u in raw.units}
    unit_of = {(u.file, u.member): u for u in raw.units}
    ids = {ps.canaries[f.item.canary].id for f in raw.found}
    sources = scanstore.source_of(registry, ids)
    timelines = scanstore.timelines(registry, set(sources.values()))
    batches = {t.canary_id: t.batch for t in timelines}
    views: list[MatchView] = []
    for f in raw.found:
        item, unit = f.item, units[f.unit]
        cid = ps.canaries[item.canary].id
        views.append(MatchView(cid, sources.get(cid), batches.get(cid), item.kind, item.form, unit.file,
                               unit.member, f.line, item.text, item.confirmed, item.record))
    confirmed = [v for v in views if v.confirmed and v.source is not None]
    by_source: dict[str, list[MatchView]] = defaultdict(list)
    for view in confirmed:
        by_source[view.source].append(view)
    per_source: dict[str, list] = defaultdict(list)
    for t in timelines:
        per_source[t.source].append(t)
    use = scanstore.usage(registry, by_source)
    who = scanstore.identities(registry, {v.canary_id for v in confirmed})
    findings = []
    for source, matches in by_source.items():
        analysis = attribution.analyse(source, {m.canary_id for m in matches}, per_source[source], use)
        unit_matches: dict[tuple, list[MatchView]] = defaultdict(list)
        for m in matches:
            unit_matches[(m.file, m.member)].append(m)
        shapes = [shape_of(unit_of[where], ms, who) for where, ms in unit_matches.items()]
        found = set(analysis.found)
        names = {cid: f"{p.civility} {p.first_name} {p.last_name}" for cid, p in who.items() if cid in found}
        findings.append(SourceFinding(analysis, shapes, matches, names))
    findings.sort(key=lambda f: (-len(f.analysis.found), f.source))
    confirmed_ids = {m.canary_id for m in confirmed}
    unconfirmed = [v for v in views if not v.confirmed and v.canary_id not in confirmed_ids]
    return ScanReport(paths=paths, started_at=started, seconds=raw.seconds, bytes=raw.bytes, engine=raw.engine,
                      jobs=raw.jobs, units=raw.units, sources=findings, unconfirmed=unconfirmed,
                      problems=raw.problems, canaries_watched=len(ps.canaries))


# -- alerts ------------------------------------------------------------------------------


def raise_alerts(registry: "Registry", report: ScanReport, raw_config: Mapping[str, Any],
                 environ: Mapping[str, str] = os.environ) -> list[int]:
    """One hit (channel ``breach``) per source found, through the normal hit -> alert
    pipeline: it opens an incident on the source's most recently planted canary in the
    file and queues the alert; returns the hit ids."""
    from canary.alerts.service import build_alerting
    from canary.hits.hit import Channel, Observation
    from canary.hits.sink import RegistryHitSink
    from canary.model import TokenKind
    from canary.hits.tokenindex import TokenIndex

    alerting = build_alerting(registry, raw_config, environ)
    sink = RegistryHitSink(registry, TokenIndex(registry), alerter=alerting.alerter)
    hit_ids = []
    files = sorted({u.file for u in report.units})
    for finding in report.sources:
        a = finding.analysis
        anchor = a.window.after_canary or a.found[0]
        email = next((t.value for t in registry.tokens_of(anchor) if t.kind is TokenKind.EMAIL), None)
        if email is None:
            continue
        c = a.completeness
        evidence = {
            "leak_file": ", ".join(files)[:500],
            "scan": {
                "found": len(a.found), "planted": a.planted,
                "canaries": a.found[:50],
                "window_after": a.window.after.isoformat() if a.window.after else None,
                "window_before": a.window.before.isoformat() if a.window.before else None,
                "completeness": round(c.share, 4) if c.share is not None else None,
                "holds_more": [h.canary_id for h in a.holds_more][:50],
            },
        }
        hit = sink.record(Observation(channel=Channel.BREACH, kind=TokenKind.EMAIL, value=email,
                                      remote=None, evidence=evidence))
        hit_ids.append(hit.id)
    return hit_ids
