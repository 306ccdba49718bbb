"""DNS messages in and out: a hand-written fast path and a dnslib slow path.

``Responder.handle(packet, tcp)`` turns one query into ``(response, hit)``:
``response`` is the wire reply (None: send nothing) and ``hit`` is None or
a ``Hit`` naming the canary labels the qname carried. It never raises on
hostile input.

Fast path: the common query (one question, standard QUERY opcode, no
answer/authority records, at most one OPT record) is parsed by hand and
answered from the precomputed bodies of dnszone.Answers. Anything else goes
to the slow path: dnslib parses it; an ordinary query hidden in an unusual
layout (a compressed question, extra records) is rewritten in canonical form
and answered by the fast path, the rest gets FORMERR / NOTIMP / REFUSED.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Callable, NamedTuple

from canary.model import TokenKind
from listener.dnszone import AXFR, IXFR, OPT, Answers, type_name

HEADER = struct.Struct("!6H")
_TYPE_CLASS = struct.Struct("!HH")
_OPT_FIXED = struct.Struct("!HHIH")  # type, payload size, ttl (ext-rcode, version, flags), rdlength
NOERROR, FORMERR, NOTIMP, REFUSED = 0, 1, 4, 5
QR, AA, TC = 0x8000, 0x0400, 0x0200
ECHO_FLAGS = 0x0110  # RD and CD are copied from the query; RA stays 0: we never recurse
OUR_PAYLOAD = 1232  # EDNS buffer size we advertise and the most we send over UDP
MIN_PAYLOAD = 512
ECS_OPTION = 8
_OPT_REPLY = {
    (0, False): b"\x00" + _OPT_FIXED.pack(OPT, OUR_PAYLOAD, 0, 0),
    (0, True): b"\x00" + _OPT_FIXED.pack(OPT, OUR_PAYLOAD, 0x8000, 0),  # DO bit echoed (RFC 3225)
    (1, False): b"\x00" + _OPT_FIXED.pack(OPT, OUR_PAYLOAD, 0x01000000, 0),  # BADVERS
    (1, True): b"\x00" + _OPT_FIXED.pack(OPT, OUR_PAYLOAD, 0x01008000, 0),
}
_OPT_PLAIN, _OPT_DO = _OPT_REPLY[(0, False)], _OPT_REPLY[(0, True)]
# Precomputed pieces of the fast path.
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00\x00\x00"  # QD=1 AN=0 NS=0 AR=0
_ONE_QUESTION_AND_OPT = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_COUNTS = (_ONE_QUESTION, _ONE_QUESTION_AND_OPT)  # of a reply with no records, by EDNS or not
_OPT_START = b"\x00\x00\x29"  # root owner, type OPT
_OPT_REST = struct.Struct("!HIH")  # payload size, ttl (ext-rcode, version, DO), rdlength
# flag bytes of a reply, indexed by the query's RD (bit 0) and CD (bit 1): both copied
_FLAGS_AA = tuple(struct.pack("!H", QR | AA | (i & 1) << 8 | (i & 2) << 3) for i in range(4))
_FLAGS_REFUSED = tuple(struct.pack("!H", QR | (i & 1) << 8 | (i & 2) << 3 | REFUSED) for i in range(4))
_POINTERS = tuple(struct.pack("!H", 0xC00C + i) for i in range(256))  # to label i bytes into the qname
DNS_LABEL = TokenKind.DNS_LABEL
_PLAIN_BYTES = bytes(b for b in range(0x21, 0x7F) if b not in b".\\")  # written as is in qname text


class Hit(NamedTuple):
    """A query for a name carrying canary labels; raw, formatted off the event loop."""

    labels: tuple[str, ...]  # canary labels found in the qname, lower case
    qname_wire: bytes  # as sent (letter case kept)
    qtype_code: int
    options: bytes  # EDNS options (OPT rdata), b"" without EDNS

    @property
    def qname(self) -> str:
        return qname_text(self.qname_wire)

    @property
    def qtype(self) -> str:
        return type_name(self.qtype_code)

    @property
    def ecs(self) -> str | None:
        return _ecs(self.options)


class Responder:
    def __init__(self, answers: Answers, known: Callable[[TokenKind, str], bool]) -> None:
        self._known = known
        self._zones = answers.zones
        self._names = answers.names
        self._exact = answers.exact
        self._wildcard = answers.wildcard
        self._nodata = answers.nodata
        self._rewriting = False
        self.errors = 0  # exceptions caught in handle(): bugs, answered with FORMERR

    # -- entry point -------------------------------------------------------

    def handle(self, data: bytes, tcp: bool = False) -> tuple[bytes | None, Hit | None]:
        try:
            return self._fast(data, tcp)
        except Exception:  # a bug must not take the listener down; answer FORMERR
            self.errors += 1
            return _error(data, FORMERR), None

    def _fast(self, data: bytes, tcp: bool) -> tuple[bytes | None, Hit | None]:
        """The common query, parsed by hand: written for speed, not beauty."""
        counts = data[4:12]
        if counts == _ONE_QUESTION:
            edns = False
        elif counts == _ONE_QUESTION_AND_OPT:
            edns = True
        else:
            return self._unusual(data, tcp)
        n = len(data)
        if data[2] & 0xF8 or n < 17:  # QR set, opcode other than QUERY, or too short
            return self._unusual(data, tcp)
        offsets = []
        i = 12
        length = data[12]
        while length:
            if length > 63:  # compression pointer or extended label: unusual in a question
                return self._unusual(data, tcp)
            offsets.append(i)
            i += length + 1
            if i >= n:
                return self._unusual(data, tcp)
            length = data[i]
        qend = i + 1
        pos = qend + 4
        if qend > 267:  # name longer than 255 bytes
            return self._unusual(data, tcp)
        if edns:
            if pos + 11 > n or data[pos:pos + 3] != _OPT_START:
                return self._unusual(data, tcp)
            payload, ttl, rdlen = _OPT_REST.unpack_from(data, pos + 3)
            if pos + 11 + rdlen != n:
                return self._unusual(data, tcp)
            if ttl & 0xFF0000:  # only EDNS version 0 exists: BADVERS, no answer
                return self._badvers(data, qend, ttl), None
            optrr = _OPT_DO if ttl & 0x8000 else _OPT_PLAIN
            limit = 65535 if tcp else (MIN_PAYLOAD if payload < MIN_PAYLOAD else
                                       OUR_PAYLOAD if payload > OUR_PAYLOAD else payload)
        else:
            if pos != n:
                return self._unusual(data, tcp)
            optrr = b""
            limit = 65535 if tcp else MIN_PAYLOAD
        flag_index = (data[2] & 1) | ((data[3] >> 3) & 2)  # RD and CD, copied
        lname = data[12:qend].lower()
        zones = self._zones
        for start in offsets:
            zone = zones.get(lname[start - 12:])
            if zone is not None:
                break
        else:
            return b"".join((data[:2], _FLAGS_REFUSED[flag_index], _COUNTS[edns], data[12:pos], optrr)), None
        found = None
        known = self._known
        for label_start in offsets:  # canary labels below the apex, in any position
            if label_start >= start:
                break
            label = lname[label_start - 11:label_start - 11 + data[label_start]].decode("latin-1")
            if known(DNS_LABEL, label):
                if found is None:
                    found = [label]
                elif label not in found:
                    found.append(label)
        qtype = (data[qend] << 8) | data[qend + 1]
        # Every query in our zones gets a Hit, with no labels when none is a canary: the
        # front end then does the same work for it as for a canary's (listener/dnshits.py).
        hit = Hit(tuple(found) if found else (), data[12:qend], qtype, data[pos + 11:n] if edns else b"")
        if data[qend + 2:pos] != b"\x00\x01" or qtype == AXFR or qtype == IXFR:  # only IN; no transfers
            return b"".join((data[:2], _FLAGS_REFUSED[flag_index], _COUNTS[edns], data[12:pos], optrr)), hit
        answer = None
        if lname in self._names:
            answer = self._exact.get((lname, qtype))
        if answer is None:
            answer = self._wildcard.get(qtype)
            if answer is None:
                answer = self._nodata[zone]
                response = b"".join((data[:2], _FLAGS_AA[flag_index], answer.counts[edns], data[12:pos],
                                     _POINTERS[start - 12], answer.body, optrr))
                return (truncated(response) if len(response) > limit else response), hit
        response = b"".join((data[:2], _FLAGS_AA[flag_index], answer.counts[edns], data[12:pos], answer.body, optrr))
        return (truncated(response) if len(response) > limit else response), hit

    @staticmethod
    def _badvers(data: bytes, qend: int, ttl: int) -> bytes:
        optrr = _OPT_REPLY[(1, bool(ttl & 0x8000))]
        flags = QR | (struct.unpack_from("!H", data, 2)[0] & ECHO_FLAGS)
        return HEADER.pack(struct.unpack_from("!H", data)[0], flags, 1, 0, 0, 1) + data[12:qend + 4] + optrr

    # -- slow path ---------------------------------------------------------

    def _unusual(self, data: bytes, tcp: bool) -> tuple[bytes | None, Hit | None]:
        if len(data) < 12 or data[2] & 0x80:
            return None, None  # no header, or a response: never answer one (no reflection loops)
        if data[2] & 0x78:  # NOTIFY, UPDATE, ...
            return _error(data, NOTIMP), None
        if self._rewriting:  # our canonical rewrite did not pass the fast path either
            return _error(data, FORMERR), None
        from dnslib import DNSRecord  # lazy: only unusual packets pay for it

        try:
            record = DNSRecord.parse(data)
        except Exception:  # DNSError, and whatever else hostile bytes provoke in a parser
            return _error(data, FORMERR), None
        header = record.header
        if len(record.questions) != 1:
            return _error(data, FORMERR), None
        question = record.questions[0]
        labels = question.qname.label
        if any(not 0 < len(lab) <= 63 for lab in labels):
            return _error(data, FORMERR), None
        qname = b"".join(bytes([len(lab)]) + lab for lab in labels) + b"\x00"
        if len(qname) > 255:
            return _error(data, FORMERR), None
        options = [rr for rr in record.ar if rr.rtype == OPT]
        canonical = HEADER.pack(header.id, _flags(data), 1, 0, 0, 1 if options else 0)
        canonical += qname + _TYPE_CLASS.pack(question.qtype, question.qclass)
        if options:
            rdata = b"".join(struct.pack("!HH", o.code, len(o.data)) + o.data for o in options[0].rdata)
            canonical += b"\x00" + _OPT_FIXED.pack(OPT, options[0].rclass, options[0].ttl, len(rdata)) + rdata
        self._rewriting = True
        try:
            return self._fast(canonical, tcp)
        finally:
            self._rewriting = False


def truncated(response: bytes) -> bytes:
    """The same reply with TC=1 and no records but the question and OPT."""
    qid, flags, qd, an, ns, ar = HEADER.unpack_from(response)
    end = 12
    if qd:
        while response[end]:
            end += response[end] + 1
        end += 5
    question_end, tail = end, b""
    for _ in range(an + ns + ar):  # our own reply: well-formed, owners are pointers or plain names
        start = end
        while response[end] and response[end] < 0xC0:
            end += response[end] + 1
        end += 2 if response[end] else 1
        rtype, _, _, rdlen = _OPT_FIXED.unpack_from(response, end)
        end += 10 + rdlen
        if rtype == OPT:
            tail = response[start:end]
    return HEADER.pack(qid, flags | TC, qd and 1, 0, 0, 1 if tail else 0) + response[12:question_end] + tail


def _flags(data: bytes) -> int:
    return struct.unpack_from("!H", data, 2)[0] & 0x7FFF


def _error(data: bytes, rcode: int) -> bytes | None:
    """A header-only error reply (the question may be what is broken)."""
    if len(data) < 12:
        return None
    qid, flags = struct.unpack_from("!HH", data)
    if flags & QR:
        return None
    return HEADER.pack(qid, QR | (flags & 0x7800) | (flags & ECHO_FLAGS) | rcode, 0, 0, 0, 0)


def qname_text(wire: bytes) -> str:
    """Presentation form of a wire name, letter case kept, odd bytes escaped."""
    labels, i = [], 0
    while i < len(wire) and wire[i]:
        raw = wire[i + 1:i + 1 + wire[i]]
        if raw.translate(None, _PLAIN_BYTES):  # something to escape
            labels.append("".join(chr(b) if b in _PLAIN_BYTES else f"\\{b:03d}" for b in raw))
        else:
            labels.append(raw.decode("ascii"))
        i += 1 + wire[i]
    return ".".join(labels) + "."


def _ecs(rdata: bytes) -> str | None:
    """EDNS client subnet (RFC 7871) from OPT rdata, e.g. "192.0.2.0/24"."""
    i = 0
    while i + 4 <= len(rdata):
        code, length = struct.unpack_from("!HH", rdata, i)
        value = rdata[i + 4:i + 4 + length]
        i += 4 + length
        if code != ECS_OPTION or len(value) < 4:
            continue
        family, source = struct.unpack_from("!HB", value)
        address = value[4:]
        try:
            if family == 1:
                return f"{ipaddress.IPv4Address(address[:4].ljust(4, bytes(1)))}/{min(source, 32)}"
            if family == 2:
                return f"{ipaddress.IPv6Address(address[:16].ljust(16, bytes(1)))}/{min(source, 128)}"
        except ValueError:
            return None
        return None
    return None
