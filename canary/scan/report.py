"""A scan report as text (the default), JSON (``result.ScanReport.to_dict``) or HTML.

Everything quoted from the scanned files is attacker-controlled: control
characters are replaced in text and everything is escaped in HTML (no
script, no external resource: the page is self-contained).
"""

from __future__ import annotations

import html
import json
from datetime import datetime

from canary.scan.result import MatchView, ScanReport, SourceFinding

MAX_TEXT_MATCHES = 200  # per source in the text output; --json and --report have all


def _clean(text: object, limit: int = 200) -> str:
    value = "".join(ch if ch.isprintable() else "\ufffd" for ch in str(text))
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def summary_lines(report: ScanReport) -> list[str]:
    rate = report.bytes / report.seconds / 1e6 if report.seconds else 0
    lines = [f"Scanned {len(report.units)} file(s)/member(s), {_size(report.bytes)} in {report.seconds:.1f} s "
             f"({rate:,.0f} MB/s, {report.engine}, {report.jobs} process(es)); "
             f"{report.canaries_watched:,} canaries watched."]
    if not report.sources:
        lines.append("No canary found: this file does not come from a watched database "
                     "(or holds none of its canaries).")
    return lines


def source_lines(finding: SourceFinding) -> list[str]:
    a, w, c = finding.analysis, finding.analysis.window, finding.analysis.completeness
    lines = [f"Source {a.source}: {len(a.found)} canaries found of {a.planted} planted"]
    lines.append("  batches: " + ", ".join(f"{b.label} {b.found}/{b.planted}" for b in a.batches if b.found)
                 + (f" (absent: {', '.join(b.label for b in a.batches if not b.found)})"
                    if any(not b.found for b in a.batches) else ""))
    window = f"  leak window: taken after {_when(w.after)} (canary #{w.after_canary} was planted then"
    if w.after_event is not None and len(w.after_event.canary_ids) > 1:
        e = w.after_event
        window += (f", in the planting of batch {_clean(e.batch)}: {len(e.canary_ids)} canaries "
                   f"{_when(e.start)} - {_when(e.end)}, {e.found} in the file")
    window += ")"
    if w.before:
        e = w.before_event
        size = f"{len(e.canary_ids)} canaries of batch {_clean(e.batch)}" if e is not None else f"canary #{w.before_canary}"
        window += f"; probably before {_when(w.before)} (the next planting, {size}, is absent)"
    else:
        window += "; no canary planted later: it may be recent"
    lines.append(window)
    if w.removed_before:
        lines.append(f"  surely before {_when(w.removed_before)}: canary #{w.removed_canary} it holds was "
                     "retired (its row removed) then")
    lines.append(f"  caveat: {w.caveat}")
    if c.share is not None:
        lines.append(f"  completeness: {c.found}/{c.expected} canaries present at the window start "
                     f"({c.events} planting event(s), every canary of each counted) = "
                     f"{_pct(c.share)} (95 % CI {_pct(c.low)} - {_pct(c.high)}) of the database")
    for s in finding.shapes:
        where = s.file + (f" [{s.member}]" if s.member else "")
        delimiter = {"\t": "tab", None: ""}.get(s.delimiter, f'"{s.delimiter}"')
        lines.append(f"  export shape of {_clean(where)}: {s.layout} {delimiter} ({s.container}, {s.encoding})"
                     f", {s.records} canary record(s)")
        if s.columns:
            lines.append("    columns: " + _clean(", ".join(s.columns), 400))
        if s.date_formats or s.phone_formats or s.nir_formats:
            lines.append(f"    dates: {', '.join(s.date_formats) or '-'}; phones: {', '.join(s.phone_formats) or '-'}"
                         f"; NIR: {', '.join(s.nir_formats) or '-'}")
    if a.holds_more:
        lines.append(f"  holds more: {len(a.holds_more)} canaries of this source are NOT in the file but were "
                     "used: the attackers hold more than they published")
        for h in a.holds_more[:20]:
            lines.append(f"    #{h.canary_id} ({h.batch}): {h.hits} hit(s) via {', '.join(h.channels)}, "
                         f"last {_when(h.last_hit_at)}")
    lines.append("  matches:")
    lines += _table(finding.matches[:MAX_TEXT_MATCHES])
    if len(finding.matches) > MAX_TEXT_MATCHES:
        lines.append(f"    ... {len(finding.matches) - MAX_TEXT_MATCHES} more (see --json or --report)")
    return lines


def _table(matches: list[MatchView]) -> list[str]:
    rows = [("FILE", "LINE", "CANARY", "KIND", "FORM", "TEXT")]
    for m in matches:
        where = m.file + (f"[{m.member}]" if m.member else "")
        rows.append((_clean(where, 60), str(m.line), f"#{m.canary_id}", m.kind, _clean(m.form, 30),
                     _clean(m.text, 60)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["    " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def text(report: ScanReport) -> str:
    lines = summary_lines(report)
    for finding in report.sources:
        lines.append("")
        lines += source_lines(finding)
    if report.unconfirmed:
        lines += ["", f"Unconfirmed: {len(report.unconfirmed)} NIR or portal login(s) of canaries seen without "
                      "another sign of the same person in the record (could be someone else's):"]
        lines += _table(report.unconfirmed[:50])
    if report.problems:
        lines += ["", f"Not scanned ({len(report.problems)}):"]
        lines += [f"  {_clean(f)}{'[' + _clean(m) + ']' if m else ''}: {_clean(msg, 300)}"
                  for f, m, msg in report.problems]
    if report.sources:
        lines += ["", "Summary:"] + summary_table(report)
    return "\n".join(lines) + "\n"


def summary_table(report: ScanReport) -> list[str]:
    """One row per source: what a responder reads first."""
    rows = [("SOURCE", "FOUND", "PLANTED", "TAKEN AFTER", "PROBABLY BEFORE", "COMPLETENESS", "HOLDS MORE")]
    for finding in report.sources:
        a = finding.analysis
        c = a.completeness
        share = "-" if c.share is None else f"{_pct(c.share)} ({_pct(c.low)}-{_pct(c.high)})"
        rows.append((_clean(a.source, 40), str(len(a.found)), str(a.planted), _when(a.window.after),
                     _when(a.window.before) if a.window.before else "-", share, str(len(a.holds_more))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def to_json(report: ScanReport) -> str:
    return _indented(report.to_dict(), "") + "\n"


_compact = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode  # C speed


def _indented(value: object, margin: str) -> str:
    """JSON indented by two spaces down to lists of objects, whose items (a match, a
    file...) are written one per line: ``json.dumps(indent=2)`` runs in pure Python
    and took longer than the scan of a 500 MB file with 1,000 matches."""
    inner = margin + "  "
    if isinstance(value, dict) and value:
        items = ",\n".join(f"{inner}{_compact(str(k))}: {_indented(v, inner)}" for k, v in value.items())
        return "{\n" + items + "\n" + margin + "}"
    if isinstance(value, list) and value and any(isinstance(v, dict) for v in value):
        return "[\n" + ",\n".join(inner + _compact(v) for v in value) + "\n" + margin + "]"
    return _compact(value)


# -- HTML --------------------------------------------------------------------------------

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}h1{font-size:1.4em}
h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.2em .5em;font-size:.9em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.warn{color:#a40000}.muted{color:#666}code{background:#f5f5f5;padding:0 .2em}"""


def _e(value: object) -> str:
    return html.escape(_clean(value, 2000), quote=True)


def _rows(header: tuple, rows: list[tuple]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def to_html(report: ScanReport) -> str:
    parts = [f"<!DOCTYPE html><html lang='fr'><head><meta charset='utf-8'><title>canary scan</title>"
             f"<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">"
             f"<style>{_CSS}</style></head><body><h1>canary scan — {_e(_when(report.started_at))}</h1>"]
    parts += [f"<p>{_e(line)}</p>" for line in summary_lines(report)]
    parts.append(_rows(("file", "member", "container", "reader", "encoding", "bytes"),
                       [(u.file, u.member or "", u.container, u.reader, u.encoding, f"{u.bytes:,}")
                        for u in report.units]))
    for finding in report.sources:
        a = finding.analysis
        parts.append(f"<h2>Source {_e(a.source)}: {len(a.found)} / {a.planted} canaries</h2><ul>")
        lines = source_lines(finding)
        parts += [f"<li>{_e(line.strip())}</li>" for line in lines[1:lines.index("  matches:")]]
        parts.append("</ul><h3>Matches</h3>")
        parts.append(_rows(("file", "member", "line", "canary", "name", "batch", "kind", "form", "text"),
                           [(m.file, m.member or "", m.line, f"#{m.canary_id}", finding.names.get(m.canary_id, ""),
                             m.batch or "", m.kind, m.form, m.text) for m in finding.matches]))
    if report.unconfirmed:
        parts.append("<h2>Unconfirmed</h2><p class='muted'>NIR or portal logins seen without another sign of "
                     "the same person in the record.</p>")
        parts.append(_rows(("file", "member", "line", "canary", "kind", "form", "text"),
                           [(m.file, m.member or "", m.line, f"#{m.canary_id}", m.kind, m.form, m.text)
                            for m in report.unconfirmed]))
    if report.problems:
        parts.append("<h2 class='warn'>Not scanned</h2>")
        parts.append(_rows(("file", "member", "problem"), [(f, m or "", msg) for f, m, msg in report.problems]))
    parts.append("</body></html>\n")
    return "".join(parts)
