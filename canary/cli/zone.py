"""`canary zone`: the DNS records to publish at the registrar, in zone-file syntax.

The records come from the DNS listener's own zone data
(``listener.dnszone.ZoneSet``, built from ``[contacts]`` and ``[listener]``
as ``canary listen`` builds it), so what is published and what the listener
answers can't disagree:

- the canary zone (``contacts.dns_zone``): its NS records and the glue
  (A/AAAA) of the name servers inside our zones, i.e. the delegation to the
  listener;
- each email domain: MX (and the address of the mail host when it is in our
  zones), SPF and DMARC TXT records, CAA if configured.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from canary.config import Config
    from listener.dnszone import Record, ZoneSet


@dataclass(frozen=True, slots=True)
class ZoneLine:
    name: str  # absolute, with the final dot
    ttl: int
    rtype: str
    data: str
    comment: str = ""


@dataclass(frozen=True, slots=True)
class ZoneSection:
    title: str  # comment lines before the records
    lines: tuple[ZoneLine, ...]


def build_zone_set(config: "Config") -> "ZoneSet":
    from listener.dns import DnsConfig
    from listener.dnszone import ZoneSet

    contacts = config.contacts
    return ZoneSet.build(DnsConfig.from_table(config.raw.get("listener") or {}), contacts.dns_zone,
                         contacts.email_domains)


def registrar_records(config: "Config") -> list[ZoneSection]:
    from listener.dnszone import AAAA, CAA, MX, NS, TXT, A

    zones = build_zone_set(config)
    zone = config.contacts.dns_zone.lower().strip(".")
    sections: list[ZoneSection] = []

    def lines(name: str, *rtypes: int, comment: str = "") -> list[ZoneLine]:
        found = []
        for rtype in rtypes:
            for record in zones.records.get((name, rtype), ()):
                found.append(_line(record, comment))
        return found

    def inside(host: str) -> bool:
        return any(host == apex or host.endswith("." + apex) for apex in zones.apexes)

    servers = [_name(r.rdata) for r in zones.records.get((zone, NS), ())]
    delegation = lines(zone, NS)
    for server in servers:
        if inside(server):
            delegation += lines(server, A, AAAA, comment="glue")
    delegation += lines(zone, CAA)
    sections.append(ZoneSection(
        f"Canary hostnames: delegate {zone} to the listener's name servers "
        "(at the registrar: NS records, and glue for name servers inside the zone).",
        tuple(delegation)))
    for domain in dict.fromkeys(d.lower().strip(".") for d in config.contacts.email_domains):
        records = lines(domain, MX)
        for mx in zones.records.get((domain, MX), ()):
            host = _name(mx.rdata[2:])
            if inside(host):
                records += lines(host, A, AAAA)
        records += lines(domain, TXT) + lines(f"_dmarc.{domain}", TXT)
        if domain != zone:
            records += lines(domain, CAA)
        sections.append(ZoneSection(
            f"Email domain {domain}: mail to canaries goes to the SMTP listener. Publish these at the "
            f"domain's DNS host, or delegate {domain} to the name servers above (NS records like "
            f"{zone}'s): the DNS listener then serves them itself.",
            tuple(records)))
    return sections


def render_zone_file(sections: Iterable[ZoneSection]) -> str:
    sections = list(sections)
    every = [line for section in sections for line in section.lines]
    width = max((len(line.name) for line in every), default=0)
    out: list[str] = []
    for section in sections:
        if out:
            out.append("")
        out.extend(f"; {text}" for text in _wrap(section.title, 76))
        for line in section.lines:
            text = f"{line.name:<{width}}  {line.ttl:>6}  IN  {line.rtype:<5} {line.data}"
            out.append(text + (f"  ; {line.comment}" if line.comment else ""))
    return "\n".join(out) + "\n"


# -- record data as text -----------------------------------------------------------


def _line(record: "Record", comment: str = "") -> ZoneLine:
    from listener.dnszone import type_name

    return ZoneLine(record.name + ".", record.ttl, type_name(record.rtype), rdata_text(record.rtype, record.rdata),
                    comment)


def rdata_text(rtype: int, rdata: bytes) -> str:
    from listener.dnszone import AAAA, CAA, MX, NS, TXT, A

    if rtype == A:
        return socket.inet_ntop(socket.AF_INET, rdata)
    if rtype == AAAA:
        return socket.inet_ntop(socket.AF_INET6, rdata)
    if rtype == NS:
        return _name(rdata) + "."
    if rtype == MX:
        return f"{struct.unpack('!H', rdata[:2])[0]} {_name(rdata[2:])}."
    if rtype == TXT:
        return " ".join(_quoted(s) for s in _strings(rdata))
    if rtype == CAA:
        flags, length = rdata[0], rdata[1]
        tag, value = rdata[2:2 + length].decode("ascii"), rdata[2 + length:].decode("ascii")
        return f"{flags} {tag} {_quoted(value)}"
    return "\\# " + str(len(rdata)) + " " + rdata.hex()  # RFC 3597 generic form


def _name(wire: bytes) -> str:
    labels, i = [], 0
    while wire[i]:
        labels.append(wire[i + 1:i + 1 + wire[i]].decode("ascii"))
        i += 1 + wire[i]
    return ".".join(labels)


def _strings(rdata: bytes) -> list[str]:
    out, i = [], 0
    while i < len(rdata):
        size = rdata[i]
        out.append(rdata[i + 1:i + 1 + size].decode("ascii"))
        i += 1 + size
    return out


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _wrap(text: str, width: int) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    return lines + ([current] if current else [])
