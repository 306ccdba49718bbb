"""Output of the CLI: text tables for people, JSON documents for scripts.

The JSON shapes are part of the public interface (docs/cli.md): add keys,
never rename or remove them.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from typing import Any, Iterable

import click


# What a terminal acts on instead of printing: C0/C1 controls (escape sequences
# retitle the window, move the cursor, hide rows), DEL, line and paragraph
# separators, bidirectional overrides. Hits carry attacker-written text (an SMTP
# RCPT, a User-Agent): every one of these is shown escaped.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# The same but C0, which json.dumps already escapes inside strings (its own newlines are layout).
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """``text`` with every control character written as \\xNN or \\uNNNN."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", text)


def _echo(text: Any = "", err: bool = False) -> None:
    click.echo(escape_controls(str(text)), err=err)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _dump(data: Any) -> None:
    # json.dumps escapes C0 controls but leaves C1 ones, separators and bidi overrides raw:
    # they can only be inside strings, where \uNNNN is the JSON way to write them.
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    click.echo(_UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[("" if c is None else escape_controls(str(c))) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    _echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in cells:
        _echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def display_name(identity) -> str:
    name = f"{identity.civility} {identity.first_name} {identity.last_name}"
    if identity.birth_name != identity.last_name:
        name += f" (née {identity.birth_name})" if identity.sex.value == "F" else f" (né {identity.birth_name})"
    return name


# -- identities -------------------------------------------------------------


def identities(stream: Iterable, as_json: bool) -> None:
    out = sys.stdout
    if as_json:
        # Streamed element by element: 100,000 identities never sit in memory.
        out.write("[")
        for i, identity in enumerate(stream):
            out.write(("\n  " if i == 0 else ",\n  ") + json.dumps(identity.to_dict(), ensure_ascii=False))
        out.write("\n]\n")
        return
    for identity in stream:
        out.write(
            f"{display_name(identity)}, {identity.birth_date:%d/%m/%Y} à {identity.birthplace.name} "
            f"({identity.birthplace.departement}) | NIR {identity.nir} | {identity.address.line1}, "
            f"{identity.address.postcode} {identity.address.city} | {identity.phone} | {identity.email}\n"
        )


# -- sources ----------------------------------------------------------------


def _source_json(summary) -> dict[str, Any]:
    spec = summary.spec
    return {
        "name": spec.name,
        "seeder": spec.seeder,
        "url_env": spec.url_env,
        "url": spec.url,
        "mapping": spec.mapping,
        "options": spec.options,
        "establishment": spec.establishment,
        "tenant": spec.tenant,
        "alert_to": list(spec.alert_to),
        "catchment": list(spec.catchment),
        "counts": dict(summary.counts),
        "last_planted": _iso(summary.last_planted),
        "last_verified": _iso(summary.last_verified),
    }


def sources(summaries: list, as_json: bool) -> None:
    if as_json:
        _dump([_source_json(s) for s in summaries])
        return
    if not summaries:
        _echo("no sources yet: see `canary source add --help`")
        return
    rows = []
    for s in summaries:
        c = s.counts
        rows.append([s.spec.name, s.spec.seeder, s.spec.establishment or "", c.get("planted", 0),
                     c.get("missing", 0), c.get("planned", 0), c.get("retired", 0),
                     _short(s.last_planted), _short(s.last_verified)])
    _table(["SOURCE", "SEEDER", "ESTABLISHMENT", "PLANTED", "MISSING", "PLANNED", "RETIRED",
            "LAST PLANTED", "LAST VERIFIED"], rows)


def source_detail(summary, as_json: bool) -> None:
    data = _source_json(summary)
    if as_json:
        _dump(data)
        return
    for key, value in data.items():
        if value in (None, [], {}):
            continue
        _echo(f"{key:14} {value}")


def _short(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


# -- canaries ---------------------------------------------------------------


def _canary_json(record, full: bool) -> dict[str, Any]:
    ident = record.identity
    data: dict[str, Any] = {
        "id": record.id,
        "source": record.source,
        "batch": record.batch,
        "status": record.status.value,
        "name": display_name(ident),
        "birth_date": ident.birth_date.isoformat(),
        "nir": ident.nir,
        "email": ident.email,
        "phone": ident.phone,
        "created_at": _iso(record.created_at),
        "planted_at": _iso(record.planted_at),
        "verified_at": _iso(record.verified_at),
        "verify_state": record.verify_state,
        "retired_at": _iso(record.retired_at),
        "note": record.note,
    }
    if full:
        from canary.tokens import tokens_of

        data["verify_details"] = list(record.verify_details or ())
        data["identity"] = ident.to_dict()
        data["tokens"] = [{"kind": t.kind.value, "value": t.value} for t in tokens_of(ident)]
        data["placement"] = record.placement.to_dict() if record.placement else None
    return data


def canaries(records: list, as_json: bool) -> None:
    if as_json:
        _dump([_canary_json(r, full=False) for r in records])
        return
    if not records:
        _echo("no canaries")
        return
    _table(["ID", "SOURCE", "BATCH", "STATUS", "NAME", "BORN", "EMAIL", "PLANTED"],
           [[r.id, r.source, r.batch, r.status.value, display_name(r.identity),
             f"{r.identity.birth_date:%d/%m/%Y}", r.identity.email, _short(r.planted_at)] for r in records])


def canary_detail(record, as_json: bool) -> None:
    data = _canary_json(record, full=True)
    if as_json:
        _dump(data)
        return
    ident = record.identity
    lines = [
        ("canary", f"#{record.id} in {record.source}, batch {record.batch}, {record.status.value}"),
        ("name", display_name(ident) + (" — prénoms: " + ", ".join(ident.first_names))),
        ("born", f"{ident.birth_date:%d/%m/%Y} à {ident.birthplace.name} ({ident.birthplace.departement})"),
        ("NIR / INS", ident.nir),
        ("address", f"{ident.address.line1}{', ' + ident.address.line2 if ident.address.line2 else ''}, "
                    f"{ident.address.postcode} {ident.address.city}"),
        ("phones", ", ".join(p for p in (ident.phone, ident.phone2) if p)),
        ("email", ident.email),
        ("portal", f"{ident.portal_url}  (login {ident.portal_login})"),
        ("hostname", ident.hostname),
        ("medical", f"{ident.blood_group}; allergies: {', '.join(ident.allergies) or 'none'}; "
                    f"treatments: {', '.join(ident.treatments) or 'none'}"),
        ("GP", f"{ident.gp.civility} {ident.gp.first_name} {ident.gp.last_name} (RPPS {ident.gp.rpps})"),
        ("planted", _short(record.planted_at)),
        ("verified", f"{_short(record.verified_at)} {record.verify_state or ''}".strip()),
    ]
    if record.placement:
        where = ", ".join(f"{r['table']}{r['key']}" for r in record.placement.rows) or "(external)"
        lines.append(("placement", where))
    if record.note:
        lines.append(("note", record.note))
    for key, value in lines:
        _echo(f"{key:10} {value}")


# -- results ----------------------------------------------------------------


def plant_result(result, as_json: bool) -> None:
    if result.dry_run:
        plans = [{"identity": ident.to_dict(), "rows": [{"table": r.table, "values": r.values} for r in rows]}
                 for ident, rows in result.plans]
        if as_json:
            _dump({"source": result.source, "dry_run": True, "count": result.count, "plans": plans})
            return
        for ident, rows in result.plans:
            _echo(display_name(ident))
            for row in rows:
                _echo(f"  {row.table}: " + ", ".join(f"{k}={v!r}" for k, v in row.values.items()))
        _echo(f"dry run: {result.count} canaries would be planted into {result.source}; nothing written")
        return
    if as_json:
        _dump({"source": result.source, "batch": result.batch, "count": result.count,
               "canary_ids": result.canary_ids, "redrawn": result.redrawn, "notices": result.notices})
        return
    _echo(f"planted {result.count} canaries into {result.source} (batch {result.batch})")
    if result.redrawn:
        _echo(f"{result.redrawn} drawn identities matched existing patients and were replaced")
    for notice in result.notices:
        _echo(notice)


def verify_report(report, as_json: bool) -> None:
    if as_json:
        _dump({"counts": report.counts(), "problems": len(report.problems),
               "findings": [{"id": f.canary_id, "source": f.source, "state": f.state, "details": list(f.details)}
                            for f in report.findings]})
        return
    for f in report.findings:
        if f.state != "ok":
            _echo(f"#{f.canary_id} {f.source}: {f.state}" + (f" ({'; '.join(f.details)})" if f.details else ""))
    counts = ", ".join(f"{n} {state}" for state, n in sorted(report.counts().items())) or "nothing to verify"
    _echo(f"verify: {counts}")


def retire_report(report, as_json: bool) -> None:
    if as_json:
        _dump({"retired": report.retired, "already_retired": report.already,
               "altered": [{"id": canary_id, "reason": reason} for canary_id, reason in report.altered]})
        return
    _echo(f"retired {len(report.retired)} canaries" +
          (f" ({len(report.already)} were already retired)" if report.already else ""))
    for canary_id, reason in report.altered:
        _echo(f"canary #{canary_id} kept: {reason}", err=True)


# -- hits and alerts ----------------------------------------------------------


def hits(records: list, as_json: bool) -> None:
    from canary.alerts.service import hit_to_dict

    if as_json:
        _dump([hit_to_dict(h) for h in records])
        return
    if not records:
        _echo("no hits")
        return
    _table(["ID", "AT (UTC)", "SOURCE", "CANARY", "CHANNEL", "KIND", "CLASSIFICATION", "REMOTE", "VALUE"],
           [[h.id, h.at.strftime("%Y-%m-%d %H:%M:%S"), h.source or "-",
             f"#{h.canary_id}" if h.canary_id is not None else "-", h.channel.value, h.kind.value,
             h.classification.value, h.remote or "-", _clip(h.value, 48)] for h in records])


def alerts_overview(overview, as_json: bool) -> None:
    from canary.alerts.service import alert_to_dict, incident_to_dict, sink_to_dict

    if as_json:
        _dump({"alerts": [alert_to_dict(a) for a in overview.alerts],
               "incidents": [incident_to_dict(i) for i in overview.incidents],
               "sinks": [sink_to_dict(s) for s in overview.sinks]})
        return
    _echo("sinks:")
    if not overview.sinks:
        _echo("  none configured: add [alerts.email], [alerts.webhook] or [alerts.syslog] to canary.toml")
    for s in sorted(overview.sinks, key=lambda s: (not s.failing, s.sink)):
        if s.failing:
            state = f"FAILING since {_short(s.failing_since)} ({s.consecutive_failures} failures in a row): {s.last_error}"
        else:
            state = f"ok, last success {_short(s.last_success_at)}"
        _echo(f"  {s.sink}: {state}; {s.pending} waiting")
    _echo("")
    _echo("incidents:")
    if not overview.incidents:
        _echo("  none")
    else:
        _table(["  ID", "SOURCE", "CANARY", "OPENED", "LAST HIT", "HITS", "MESSAGES"],
               [[f"  {i.id}", i.source, f"#{i.canary_id}" if i.canary_id is not None else "-",
                 _short(i.opened_at), _short(i.last_hit_at), i.hit_count, i.alert_count]
                for i in overview.incidents])
    _echo("")
    _echo("messages:")
    if not overview.alerts:
        _echo("  none")
        return
    _table(["  ID", "CREATED", "KIND", "STATE", "DELIVERIES", "SUBJECT"],
           [[f"  {a.id}", _short(a.created_at), a.kind.value, a.delivery_state,
             " ".join(_delivery(d) for d in a.deliveries) or "-", a.subject] for a in overview.alerts])


def _delivery(delivery) -> str:
    if delivery.status.value == "sent":
        return f"{delivery.sink}:sent"
    if delivery.last_error:
        return f"{delivery.sink}:retrying({delivery.attempts})"
    return f"{delivery.sink}:pending"


def alert_test_results(results: list) -> None:
    for r in results:
        _echo(f"{r.sink}: ok" if r.ok else f"{r.sink}: FAILED: {r.error}")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
