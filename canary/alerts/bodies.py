"""The text and HTML bodies of an alert, rendered from its structured ``data``.

Both bodies show the same facts; every value is made printable (``clean``)
for text and escaped (``escape``) for HTML, since evidence comes from the
attacker. Times are shown in UTC and in Paris time.
"""

from __future__ import annotations

import html
import unicodedata
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from canary.hits.hit import Classification

CLASS_LABELS = {
    Classification.CREDENTIAL_USE: "identifiants utilisés (credential use)",
    Classification.HUMAN: "humain (human)",
    Classification.AUTOMATED: "automatique (automated)",
    Classification.RESOLVER_RECHECK: "re-vérification DNS (resolver re-check)",
    Classification.INTERNAL: "interne (internal)",
    Classification.UNMATCHED: "sans canari (unmatched)",
    Classification.UNJUSTIFIED_ACCESS: "accès injustifié (unjustified access)",
    Classification.BULK_ACCESS: "accès en masse (bulk access)",
}
_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"}


class Bodies:
    def __init__(self, tz: str = "Europe/Paris") -> None:
        try:
            self._tz: ZoneInfo | None = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            self._tz = None

    def when(self, value: datetime | str | None) -> str:
        if value is None:
            return "—"
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        value = value.astimezone(timezone.utc)
        text = f"{value:%Y-%m-%d %H:%M} UTC"
        if self._tz is not None:
            text += f" ({value.astimezone(self._tz):%d/%m %H:%M} heure de Paris)"
        return text

    def facts(self, data: Mapping[str, Any]) -> list[tuple[str, str]]:
        facts: list[tuple[str, str]] = []
        if "source" in data:
            s = data["source"]
            facts.append(("Base (source database)", f"« {s['name']} »{establishment(s)}"
                          + (f", seeder {s['kind']}" if s.get("kind") else "")))
        if data.get("canary"):
            c = data["canary"]
            planted = self.when(c.get("planted_at")) if c.get("planted_at") else "non planté"
            facts.append(("Canari (canary)", f"#{c['id']} {c.get('name') or ''}, planté le {planted}"
                          + (f", lot {c['batch']}" if c.get("batch") else "")))
        if data.get("trigger"):
            h = data["trigger"]
            facts.append(("Déclencheur (trigger)", f"{self.when(h['at'])} — {h['channel_label']} "
                          f"({h['kind']}), {h['classification_label']}, depuis {h['remote'] or '—'}"))
        if data.get("access"):  # from a hospital audit trail (canary/alerts/access.py)
            a = data["access"]
            facts.append(("Compte (account)", ", ".join(a["accounts"]) or "—"))
            if a.get("account_names"):
                facts.append(("Nom (user name)", ", ".join(a["account_names"])))
            facts.append(("Poste / adresse (workstation/IP)", ", ".join(a["workstations"]) or "—"))
            facts.append(("Application (audit source)", ", ".join(a["audit_sources"]) or "—"))
            facts.append(("Actions", "; ".join(f"{e['action']} {self.when(e['at'])} par {e['account']}"
                                               for e in a["events"])))
        if data.get("incident"):
            i = data["incident"]
            counts = ", ".join(f"{class_label(k)} {n}" for k, n in sorted(i["counts"].items()))
            facts.append(("Incident", f"#{i['id']} ouvert le {self.when(i['opened_at'])}, "
                          f"{i['hit_count']} accès ({counts})"))
        if data.get("deadline"):
            facts.append(("Échéance CNIL (deadline)", self.when(data["deadline"]["cnil_art33"])))
        if data.get("sink"):
            facts.append(("Canal (sink)", data["sink"]))
            facts.append(("Erreur (last error)", clean(data.get("last_error") or "", 300)))
        return facts

    def text(self, data: Mapping[str, Any]) -> str:
        out = [data["subject"], ""]
        facts = data["facts"]
        width = max((len(label) for label, _ in facts), default=0)
        out += [f"{label.ljust(width)} : {value}" for label, value in facts]
        out += ["", "CE QUE CELA SIGNIFIE (what it means)", data["meaning"]]
        if data.get("actions"):
            out += ["", "QUE FAIRE (what to do)"]
            for n, action in enumerate(data["actions"], 1):
                out.append(f"{n}. {action['text']}" + (f"\n   {action['url']}" if action.get("url") else ""))
        for title, hits, omitted in self._hit_sections(data):
            out += ["", title]
            for h in hits:
                out.append(f"  #{h['id']} {self.when(h['at'])}  {h['channel_label']}  "
                           f"{h['classification']}  {h['remote'] or '—'}")
                out += [f"      {k}: {v}" for k, v in h["evidence"].items()]
            if omitted:
                out.append(f"  … {omitted} accès de plus (canary hits)")
        if data.get("held"):
            out += ["", f"MESSAGES RETENUS (held back: {len(data['held'])})"]
            out += [f"  #{a['id']} {self.when(a['created_at'])} {a['subject']}" for a in data["held"]]
        return "\n".join(out) + "\n"

    def html(self, data: Mapping[str, Any]) -> str:
        e = escape
        color = {"critical": "#b00020", "high": "#d35400"}.get(data["level"], "#555555")
        parts = [
            "<!DOCTYPE html><html><body style=\"font-family:sans-serif;font-size:14px\">",
            f"<h2 style=\"color:{color}\">{e(data['subject'])}</h2>",
            "<table style=\"border-collapse:collapse\">",
        ]
        parts += [f"<tr><th style=\"text-align:left;padding:2px 8px\">{e(label)}</th>"
                  f"<td style=\"padding:2px 8px\">{e(value)}</td></tr>" for label, value in data["facts"]]
        parts += ["</table>", "<h3>Ce que cela signifie (what it means)</h3>", f"<p>{e(data['meaning'])}</p>"]
        if data.get("actions"):
            parts.append("<h3>Que faire (what to do)</h3><ol>")
            for action in data["actions"]:
                link = (f" <a href=\"{e(action['url'])}\">{e(action['url'])}</a>"
                        if action.get("url") else "")
                parts.append(f"<li>{e(action['text'])}{link}</li>")
            parts.append("</ol>")
        for title, hits, omitted in self._hit_sections(data):
            parts.append(f"<h3>{e(title)}</h3><table style=\"border-collapse:collapse\" border=\"1\">"
                         "<tr><th>#</th><th>quand (at)</th><th>canal</th><th>classification</th>"
                         "<th>adresse (remote)</th><th>indices (evidence)</th></tr>")
            for h in hits:
                evidence = "<br>".join(f"<b>{e(k)}</b>: {e(v)}" for k, v in h["evidence"].items())
                parts.append(f"<tr><td>{h['id']}</td><td>{e(self.when(h['at']))}</td>"
                             f"<td>{e(h['channel_label'])}</td><td>{e(h['classification'])}</td>"
                             f"<td>{e(h['remote'] or '—')}</td><td>{evidence}</td></tr>")
            parts.append("</table>")
            if omitted:
                parts.append(f"<p>… {omitted} accès de plus (canary hits)</p>")
        if data.get("held"):
            parts.append(f"<h3>Messages retenus (held back: {len(data['held'])})</h3><ul>")
            parts += [f"<li>#{a['id']} {e(self.when(a['created_at']))} {e(a['subject'])}</li>"
                      for a in data["held"]]
            parts.append("</ul>")
        parts.append("</body></html>")
        return "\n".join(parts)

    @staticmethod
    def _hit_sections(data: Mapping[str, Any]) -> Iterable[tuple[str, list, int]]:
        if "hits" in data:
            yield (f"ACCÈS (hits so far: {data['incident']['hit_count']})", data["hits"],
                   data.get("hits_omitted", 0))
        for incident in data.get("incidents", ()):
            c = incident["canary"]
            yield (f"CANARI #{c['id']} {c.get('name') or ''} — incident #{incident['id']}, "
                   f"{incident['new_hits']} nouveaux accès sur {incident['hit_count']}",
                   incident["hits"], max(0, incident["new_hits"] - len(incident["hits"])))


def establishment(source: Mapping[str, Any]) -> str:
    return f" ({source['establishment']})" if source.get("establishment") else ""


def class_label(value: str) -> str:
    try:
        return CLASS_LABELS[Classification(value)].split(" (")[0]
    except ValueError:
        return value


def clean(value: str, limit: int) -> str:
    """Printable text: control and bidi characters shown as escapes, length capped."""
    out = []
    for ch in value[: limit * 2]:
        if ch in _BIDI or (unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch != " "):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    text = "".join(out)
    return text if len(text) <= limit else text[:limit] + "…"


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)
