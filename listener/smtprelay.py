"""Mail forwarded by watched mailboxes: who was it for?

A watched mailbox (``contacts.mailbox_pool_file``: a real address at gmail.com,
orange.fr...) forwards everything it receives to our relay address
(``listener.smtp_relay``). The envelope then names only the relay; the
original recipient is in the headers the provider wrote or kept. Gmail's
automatic forwarding prepends ``X-Forwarded-To: <relay>``,
``X-Forwarded-For: <mailbox> <relay>`` and keeps its ``Delivered-To:
<mailbox>`` (headers of a forwarded message as shown by
https://www.ajaxtower.jp/gmail/auto-forwarding/index3.html); Postfix-based
providers write ``X-Original-To`` and ``Delivered-To`` at local delivery
(Postfix ``local(8)``/``virtual(8)``, "prepend_delivered_header"); every
forwarder keeps ``To`` and ``Cc``; the ``for`` clause of ``Received`` lines
names the recipient of a hop (Gmail's MX writes ``for <mailbox>``). We read
them in that order.

Only the header block is read, at most ``MAX_HEADER_BYTES``: never the body.
Hostile input is rejected and counted, never raised: a header block larger
than the bound, or without an end, yields nothing; more than
``MAX_ADDRESSES`` distinct addresses stops the reading there (the addresses
found before stand, the rest are not looked at).

The providers write to their mailboxes themselves (a sign-in alert each time
the operator checks the account, the forwarding confirmation): mail whose
From is one of ``listener.smtp_relay_notice_senders`` names no canary; it is
kept with the relay's own hit for the operator. Exact addresses only: a
Google Docs share or a Calendar invite, which phishing uses, still counts.
A forgery of them would have to pass the provider's own checks of its own
domains (their DMARC policy: ``dig +short TXT _dmarc.google.com``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from canary.errors import ConfigError
from canary.hits.hit import HitSink
from canary.model import TokenKind
from canary.tokens import normalise

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024  # a Gmail-forwarded message's headers (ARC, DKIM, Received chain): 5-20 KiB
MAX_ADDRESSES = 100  # distinct addresses looked up per message
# Where a forwarder leaves the original recipient, most telling first.
# Last, the "for" clause of Received (RFC 5321 section 4.4): the recipient a hop delivered to, which
# still names a mailbox reached in Bcc through a forwarder that writes none of the others.
RELAY_HEADERS = ("x-forwarded-to", "x-forwarded-for", "x-original-to", "delivered-to", "to", "cc", "received")
_FOR_CLAUSE = re.compile(rb"\bfor\s+<?([^\s<>;]{1,320})")

# An addr-spec as mail systems write them, found anywhere in a header value: "<a@b>", "Name <a@b>",
# "a@b c@d" (X-Forwarded-For). Bounded lengths keep the scan linear on hostile input.
_ADDRESS = re.compile(rb"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
# Senders of Google's and Microsoft's account notices as they are commonly seen; not checked here on
# real mail: confirm them with the first notice a mailbox gets (docs/setup.md).
DEFAULT_NOTICE_SENDERS = ("no-reply@accounts.google.com", "forwarding-noreply@google.com",
                          "account-security-noreply@accountprotection.microsoft.com")
_FIELD = re.compile(rb"([!-9;-~]{1,76})[ \t]*:(.*)", re.DOTALL)  # field name (RFC 5322 ftext), colon, value


def relay_addresses(value: Any, domains: tuple[str, ...]) -> tuple[str, ...]:
    """listener.smtp_relay: addresses at our own domains (else our server would refuse their mail)."""
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise ConfigError("listener.smtp_relay must be an address (or a list of addresses) like "
                          "\"relais@your-domain.fr\"")
    relays = []
    for address in values:
        address = address.strip().lower()
        local, at, domain = address.rpartition("@")
        if not (at and local and re.fullmatch(r"[a-z0-9._+-]{1,64}", local)):
            raise ConfigError(f"listener.smtp_relay: {address!r} is not an address like \"relais@your-domain.fr\"")
        if domain not in domains:
            raise ConfigError(f"listener.smtp_relay: {address} is not at one of contacts.email_domains "
                              f"({', '.join(domains)}): our SMTP listener would refuse its mail")
        relays.append(address)
    return tuple(dict.fromkeys(relays))


def notice_senders(value: Any) -> frozenset[str]:
    """listener.smtp_relay_notice_senders: a list of exact sender addresses."""
    if value is None:
        return frozenset(DEFAULT_NOTICE_SENDERS)
    if not isinstance(value, list) or not all(isinstance(v, str) and _ADDRESS.fullmatch(v.strip().encode())
                                              for v in value):
        raise ConfigError("listener.smtp_relay_notice_senders must be a list of addresses like "
                          "[\"no-reply@accounts.google.com\"]")
    return frozenset(v.strip().lower() for v in value)


@dataclass
class RelayScan:
    """The addresses of a forwarded message's headers, each with the first header naming it."""

    found: dict[str, str] = field(default_factory=dict)  # address (normalised) -> header name
    rejected: str | None = None  # why the headers were not (all) read: "too large", "no header end", "too many"
    sender: str | None = None  # the first address of From, normalised


def header_block(content: bytes, limit: int = MAX_HEADER_BYTES) -> bytes | None:
    """The header block of a raw message (without the blank line), or None past ``limit`` bytes."""
    head = content[:limit + 4]
    ends = [i for i in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if i >= 0]
    if ends:
        end = min(ends)
        return head[:end] if end <= limit else None
    # A message made of headers only, within the bound, is still a header block.
    return content if len(content) <= limit else None


def scan_forwarded(content: bytes, *, limit: int = MAX_HEADER_BYTES, max_addresses: int = MAX_ADDRESSES) -> RelayScan:
    """Every address of the RELAY_HEADERS of ``content``, in their order; never raises on any input."""
    scan = RelayScan()
    block = header_block(content, limit)
    if block is None:
        scan.rejected = "too large" if len(content) > limit else "no header end"
        return scan
    values: dict[str, list[bytes]] = {name: [] for name in (*RELAY_HEADERS, "from")}
    for unfolded in re.split(rb"\r?\n(?![ \t])", block):
        match = _FIELD.match(unfolded)
        if match is None:  # a line that is no field (junk, a stray continuation): skipped
            continue
        name = match.group(1).decode("ascii").lower()
        if name in values:
            values[name].append(match.group(2))
    senders = [m for v in values["from"][:1] for m in _ADDRESS.findall(v)[:1]]
    scan.sender = normalise(TokenKind.EMAIL, senders[0].decode("ascii")) if senders else None
    seen: set[str] = set()
    for name in RELAY_HEADERS:
        for value in values[name]:
            if name == "received":
                value = b" ".join(_FOR_CLAUSE.findall(value))
            for raw in _ADDRESS.findall(value):
                address = normalise(TokenKind.EMAIL, raw.decode("ascii"))
                if address in seen:
                    continue
                if len(seen) >= max_addresses:
                    scan.rejected = "too many"
                    return scan
                seen.add(address)
                scan.found.setdefault(address, _HEADER_NAMES[name])
    return scan


def forwarded_canaries(content: bytes, relay: str, direct: list[str], sink: HitSink,
                       metrics: Any = None, notices: frozenset[str] = frozenset()) -> dict[str, str]:
    """Canary addresses the headers of a message to ``relay`` name (address -> header), ``direct`` ones aside.

    A rejection is logged and counted (``canary_smtp_relay_messages_total``), never raised; a
    provider's notice (From in ``notices``) names no canary."""
    scan = scan_forwarded(content)
    if scan.sender is not None and scan.sender in notices:
        if metrics is not None:
            metrics.smtp_relay("notice")
        return {}
    found = {a: h for a, h in scan.found.items() if a not in direct and sink.known(TokenKind.EMAIL, a)}
    if scan.rejected is not None:
        log.warning("SMTP relay: headers of a message to %s not (all) read: %s; %d canary address(es) found before",
                    relay, scan.rejected, len(found))
    if metrics is not None:
        metrics.smtp_relay("rejected" if scan.rejected else "canary" if found else "none")
    return found


_HEADER_NAMES = {"x-forwarded-to": "X-Forwarded-To", "x-forwarded-for": "X-Forwarded-For",
                 "x-original-to": "X-Original-To", "delivered-to": "Delivered-To", "to": "To", "cc": "Cc",
                 "received": "Received"}
