"""The export shape of a leaked file: which export function most likely made it.

For each scanned text holding a source's canaries: its layout (CSV and its
delimiter, SQL INSERT or COPY, JSON, JSON lines, spreadsheet, text), the
column order (header names, and the canary's own values recognised field by
field: "nom", "prenom", "date_naissance"...), and the date, phone and NIR
writings seen. Two files with the same shape came out of the same export.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from canary.model import Identity
from canary.scan import forms

DELIMITERS = (";", "\t", ",", "|")
_JSON_KEY = re.compile(r'"([^"\\]{1,64})"\s*:')


@dataclass(frozen=True, slots=True)
class Shape:
    file: str
    member: str | None
    container: str
    encoding: str
    layout: str  # csv, sql-insert, sql-copy, json, jsonl, xlsx, text
    delimiter: str | None
    columns: tuple[str, ...]
    date_formats: tuple[str, ...]
    phone_formats: tuple[str, ...]
    nir_formats: tuple[str, ...]
    records: int  # canary records of this source seen here


def shape_of(unit, matches: Sequence, identities: dict[int, Identity]) -> Shape:
    """``unit``: inputs.Unit; ``matches``: the source's matches in it (report.MatchView)."""
    record = next((m.record for m in matches if m.record), "")
    layout, delimiter = _layout(unit, record)
    identity = identities.get(next((m.canary_id for m in matches if m.record == record), -1))
    columns = _columns(layout, delimiter, unit.header, record, identity)
    dates: Counter = Counter()
    read: dict[str, list] = {}  # a record holds several tokens of its canary: its dates are read once
    for m in matches:
        if m.kind == "fingerprint":
            dates[m.form] += 1
        who = identities.get(m.canary_id)
        if who is not None and m.record and m.kind != "fingerprint":
            if m.record not in read:
                read[m.record] = forms.dates_in(forms.plain(m.record))
            for day, fmt in read[m.record]:
                if day == who.birth_date:
                    dates[fmt] += 1
                    break
    phones = Counter(m.form for m in matches if m.kind == "phone")
    nirs = Counter(m.form for m in matches if m.kind == "nir")
    return Shape(
        file=unit.file, member=unit.member, container=unit.container, encoding=unit.encoding, layout=layout,
        delimiter=delimiter, columns=columns, date_formats=tuple(f for f, _ in dates.most_common()),
        phone_formats=tuple(f for f, _ in phones.most_common()), nir_formats=tuple(f for f, _ in nirs.most_common()),
        records=len({(m.canary_id, m.line) for m in matches}),
    )


def _layout(unit, record: str) -> tuple[str, str | None]:
    head = unit.header.lstrip()
    text = record.strip()
    if "xlsx" in unit.container:
        return "xlsx", "\t"
    if head.upper().startswith("COPY ") or "\\N" in record and "\t" in record:
        return "sql-copy", "\t"
    if text.startswith("(") or "INSERT INTO" in record.upper() or head.upper().startswith(("INSERT", "--", "/*")):
        return "sql-insert", ","
    if text.startswith("{") and "\n" not in text:
        return "jsonl", None
    if '":' in text:
        return "json", None
    counts = {d: text.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.get)
    if counts[best] >= 2:
        return ("tsv" if best == "\t" else "csv"), best
    return "text", None


def _columns(layout: str, delimiter: str | None, header: str, record: str, who: Identity | None
             ) -> tuple[str, ...]:
    if not record:
        return ()
    if layout in ("json", "jsonl"):
        return tuple(dict.fromkeys(_JSON_KEY.findall(record)))
    if delimiter is None:
        return ()
    line = record.strip().splitlines()[0] if record.strip() else ""
    quote = "'" if layout == "sql-insert" else '"'
    if layout == "sql-insert":
        line = line.strip().lstrip("(").rstrip(";").rstrip(",").rstrip(")")
    fields = next(csv.reader([line], delimiter=delimiter, quotechar=quote, escapechar="\\"), [])
    names: list[str] = []
    if header and layout in ("csv", "tsv", "xlsx"):
        names = next(csv.reader([header], delimiter=delimiter, quotechar=quote), [])
        if len(names) != len(fields) or any(any(ch.isdigit() for ch in n) and "@" in n for n in names):
            names = []
    if names:  # the export's own column names say most about the export function
        return tuple(n.strip() or "?" for n in names)
    return tuple(_label(value, who) or "?" for value in fields)


def _label(value: str, who: Identity | None) -> str | None:
    if who is None or not value.strip() or value.strip().upper() == "NULL":
        return None
    v = value.strip()
    folded = " ".join(forms.fold(v).split())

    def same(name: str) -> bool:
        return bool(name) and folded == " ".join(forms.fold(name).split())

    if same(who.last_name):
        return "nom"
    if same(who.birth_name):
        return "nom_naissance"
    if same(who.first_name):
        return "prenom"
    if same(" ".join(who.first_names)):
        return "prenoms"
    digits = re.sub(r"\D", "", v)
    if v.lower() == who.email:
        return "email"
    if who.url_code and who.url_code in v.lower():
        return "lien_portail" if "/" in v else "code_acces"
    if who.dns_label and who.dns_label in v.lower():
        return "hote_dns"
    if v.lower() == who.portal_login.lower():
        return "identifiant_portail"
    if v == who.portal_password:
        return "mot_de_passe"
    for number, label in ((who.phone, "telephone"), (who.phone2, "telephone2")):
        if number and len(digits) >= 9 and digits.endswith(number[-9:]):
            return label
    if len(digits) >= 13 and v.replace(" ", "").upper().startswith(who.nir[:13]):
        return "nir"
    if any(day == who.birth_date for day, _ in forms.dates_in(forms.plain(v))):
        return "date_naissance"
    if v in (who.sex.value, who.civility):
        return "sexe" if v == who.sex.value else "civilite"
    if v == who.address.postcode:
        return "code_postal"
    if same(who.address.city):
        return "ville"
    if same(who.address.line1):
        return "adresse"
    return None
