"""Zone data of the DNS listener and the answers built from it, once.

The zones are the canary hostname zone (``[contacts] dns_zone``) and every
email domain (``[contacts] email_domains``). They hold:

- at each apex: SOA, NS (with glue in the additional section), MX (mail
  host, with its address), SPF TXT and CAA as configured;
- ``_dmarc.<email domain>``: the DMARC TXT record;
- any name under a zone: A (public_ip) and AAAA (public_ipv6) with a short
  TTL, unless the name has its own address records (name servers' glue).

Nothing else exists: other types get NODATA (NOERROR, SOA in authority) and
there is never an NXDOMAIN, so a canary label and an unknown label get the
same answer. ANY gets one HINFO "RFC8482" record (RFC 8482).

Answers are precomputed as wire-format bodies whose owner names are the
compression pointer 0xC00C to the question (the qname as the client sent
it, so its letter case is echoed). listener/dnswire.py puts them together.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Mapping, NamedTuple, Sequence

from canary.errors import ConfigError
from listener.dnsconfig import DnsConfig, NameServer, check_name

A, NS, SOA, HINFO, MX, TXT, AAAA, OPT, IXFR, AXFR, ANY, CAA = 1, 2, 6, 13, 15, 16, 28, 41, 251, 252, 255, 257
TYPE_NAMES = {A: "A", NS: "NS", SOA: "SOA", HINFO: "HINFO", MX: "MX", TXT: "TXT", AAAA: "AAAA", OPT: "OPT",
              IXFR: "IXFR", AXFR: "AXFR", ANY: "ANY", CAA: "CAA", 5: "CNAME", 12: "PTR", 33: "SRV",
              43: "DS", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS"}
MX_PREFERENCE = 10
SOA_TIMERS = (7200, 3600, 1209600)  # refresh, retry, expire
_RR = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_POINTER_TO_QNAME = b"\xc0\x0c"


def type_name(qtype: int) -> str:
    return TYPE_NAMES.get(qtype, f"TYPE{qtype}")


def name_wire(name: str) -> bytes:
    """Uncompressed wire form of a lower-case, validated name."""
    out = bytearray()
    for label in filter(None, name.rstrip(".").split(".")):
        raw = label.encode("ascii")
        out += bytes([len(raw)]) + raw
    out.append(0)
    return bytes(out)


def character_strings(text: str) -> bytes:
    """TXT/HINFO rdata: the text cut into <= 255-byte length-prefixed strings."""
    raw = text.encode("ascii")
    if not raw:
        return b"\x00"
    return b"".join(bytes([len(raw[i:i + 255])]) + raw[i:i + 255] for i in range(0, len(raw), 255))


@dataclass(frozen=True, slots=True)
class Record:
    name: str  # owner, lower case, no trailing dot
    rtype: int
    ttl: int
    rdata: bytes  # wire form, no compression

    def wire(self, owner: bytes = _POINTER_TO_QNAME) -> bytes:
        return owner + _RR.pack(self.rtype, 1, self.ttl, len(self.rdata)) + self.rdata


class Answer(NamedTuple):
    """A precomputed answer: section counts (without, with OPT) and body (after the question)."""

    counts: tuple[bytes, bytes]
    body: bytes
    nodata: bool = False  # body is an SOA record lacking its owner (a pointer into the qname)

    @classmethod
    def of(cls, an: int, ns: int, ar: int, body: bytes, nodata: bool = False) -> "Answer":
        return cls((struct.pack("!4H", 1, an, ns, ar), struct.pack("!4H", 1, an, ns, ar + 1)), body, nodata)


@dataclass(frozen=True)
class ZoneSet:
    apexes: tuple[str, ...]  # most specific first
    records: Mapping[tuple[str, int], tuple[Record, ...]]  # exact rrsets
    wildcard: Mapping[int, Record]  # A/AAAA of any name under the zones (owner "*")
    soa: Mapping[str, Record]  # per apex

    @classmethod
    def build(cls, config: DnsConfig, dns_zone: str, email_domains: Sequence[str] = (),
              now: datetime | None = None) -> "ZoneSet":
        zone = check_name(dns_zone, "contacts.dns_zone")
        domains = tuple(dict.fromkeys(check_name(d, "contacts.email_domains") for d in email_domains))
        apexes = tuple(sorted(dict.fromkeys((zone,) + domains), key=lambda n: (-n.count("."), n)))
        serial = config.soa_serial if config.soa_serial is not None else _serial(now)
        servers = config.nameservers or (NameServer(f"ns1.{zone}"), NameServer(f"ns2.{zone}"))
        zttl, ttl = config.zone_ttl, config.ttl
        records: dict[tuple[str, int], list[Record]] = {}

        def add(name: str, rtype: int, rttl: int, rdata: bytes) -> None:
            rrset = records.setdefault((name, rtype), [])
            if all(r.rdata != rdata for r in rrset):
                rrset.append(Record(name, rtype, rttl, rdata))

        def inside(name: str) -> bool:
            return any(name == a or name.endswith("." + a) for a in apexes)

        def addresses(name: str, v4: Iterable[str], v6: Iterable[str]) -> None:
            v4 = tuple(v4) or (config.public_ip,)
            v6 = tuple(v6) or ((config.public_ipv6,) if config.public_ipv6 else ())
            for ip in v4:
                add(name, A, zttl, socket.inet_pton(socket.AF_INET, ip))
            for ip in v6:
                add(name, AAAA, zttl, socket.inet_pton(socket.AF_INET6, ip))

        soa: dict[str, Record] = {}
        for apex in apexes:
            rdata = (name_wire(servers[0].name) + name_wire(f"hostmaster.{apex}")
                     + struct.pack("!5I", serial, *SOA_TIMERS, ttl))
            soa[apex] = Record(apex, SOA, zttl, rdata)
            add(apex, SOA, zttl, rdata)
            for server in servers:
                add(apex, NS, zttl, name_wire(server.name))
            for issuer in config.caa:
                add(apex, CAA, zttl, b"\x00\x05issue" + issuer.encode("ascii"))
        for server in servers:  # glue; an out-of-zone name server's address is found elsewhere
            if inside(server.name):
                addresses(server.name, server.ipv4, server.ipv6)
        for domain in domains:
            host = config.mail_host or f"mx.{domain}"
            add(domain, MX, zttl, struct.pack("!H", MX_PREFERENCE) + name_wire(host))
            add(domain, TXT, zttl, character_strings(config.spf))
            dmarc = config.dmarc.replace("{domain}", domain)
            add(f"_dmarc.{domain}", TXT, zttl, character_strings(dmarc))
            if inside(host) and (host, A) not in records:
                addresses(host, (), ())
        wildcard = {A: Record("*", A, ttl, socket.inet_pton(socket.AF_INET, config.public_ip))}
        if config.public_ipv6:
            wildcard[AAAA] = Record("*", AAAA, ttl, socket.inet_pton(socket.AF_INET6, config.public_ipv6))
        for name, _ in records:
            if len(name_wire(name)) > 255:
                raise ConfigError(f"DNS name {name} is longer than 255 bytes")
        return cls(apexes, {k: tuple(v) for k, v in records.items()}, wildcard, soa)

    def rrset(self, name: str, rtype: int) -> tuple[Record, ...]:
        """Records of ``name`` (lower case) and ``rtype``, wildcard included."""
        exact = self.records.get((name, rtype))
        if exact:
            return exact
        return (self.wildcard[rtype],) if rtype in self.wildcard else ()

    def answers(self) -> "Answers":
        return Answers(self)


class Answers:
    """The lookup tables used on the hot path, all keyed by wire bytes."""

    def __init__(self, zones: ZoneSet) -> None:
        self.zones: dict[bytes, int] = {name_wire(a): i for i, a in enumerate(zones.apexes)}
        self.apexes = zones.apexes
        self.nodata: tuple[Answer, ...] = tuple(
            Answer.of(0, 1, 0, zones.soa[a].wire(b""), nodata=True) for a in zones.apexes
        )
        self.wildcard: dict[int, Answer] = {t: Answer.of(1, 0, 0, r.wire()) for t, r in zones.wildcard.items()}
        self.wildcard[ANY] = Answer.of(1, 0, 0, Record("*", HINFO, zones.soa[zones.apexes[0]].ttl,
                                                    character_strings("RFC8482") + b"\x00").wire())
        self.exact: dict[tuple[bytes, int], Answer] = {}
        for (name, rtype), rrset in zones.records.items():
            body = b"".join(r.wire() for r in rrset)
            extra = self._additional(zones, rrset)
            self.exact[(name_wire(name), rtype)] = Answer.of(len(rrset), 0, len(extra), body + b"".join(extra))
        self.names = frozenset(key[0] for key in self.exact)

    @staticmethod
    def _additional(zones: ZoneSet, rrset: tuple[Record, ...]) -> list[bytes]:
        """Addresses of in-zone NS and MX targets (glue)."""
        extra: list[bytes] = []
        for record in rrset:
            if record.rtype == NS:
                target = record.rdata
            elif record.rtype == MX:
                target = record.rdata[2:]
            else:
                continue
            name = _wire_to_name(target)
            if not any(name == a or name.endswith("." + a) for a in zones.apexes):
                continue
            for rtype in (A, AAAA):
                for glue in zones.rrset(name, rtype):
                    extra.append(Record(name, rtype, glue.ttl, glue.rdata).wire(target))
        return extra


def _wire_to_name(wire: bytes) -> str:
    labels, i = [], 0
    while wire[i]:
        labels.append(wire[i + 1:i + 1 + wire[i]].decode("ascii"))
        i += 1 + wire[i]
    return ".".join(labels)


def _serial(now: datetime | None) -> int:
    day = (now or datetime.now(timezone.utc)).strftime("%Y%m%d")
    return int(day) * 100
