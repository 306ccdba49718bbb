"""Network addresses for the front ends: bind addresses and the client IP.

The client IP of an HTTP request is the socket peer, unless that peer is one
of our configured reverse proxies: only then is a forwarding header read,
walking it from the right and skipping our own proxies, so a client can't
put a fake address in front of the chain. Only the one header that our proxy
sets is read (``X-Forwarded-For`` or ``Forwarded``): a proxy passes the other
one through untouched, and with it whatever the client wrote there.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from canary.config import Setting
from canary.errors import ConfigError

PROXY_HEADERS = ("x-forwarded-for", "forwarded")
MAX_HOPS = 32  # a longer chain is cut: its left part can't be trusted anyway

SETTINGS: tuple[Setting, ...] = (
    Setting("listener.trusted_proxies", (),
            "CIDRs of our own reverse proxies / load balancers (e.g. [\"10.0.0.0/8\"]); only from "
            "these peers is the forwarding header read to find the client IP."),
    Setting("listener.proxy_header", "x-forwarded-for",
            "Forwarding header our trusted proxies set: \"x-forwarded-for\" or \"forwarded\" (RFC 7239)."),
)

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("[^"]*"|[^;,\s]*)', re.IGNORECASE)


def parse_bind(text: Any, name: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"``, ``"[::1]:2525"`` or ``":8080"`` (all addresses) -> (host, port)."""
    if not isinstance(text, str) or ":" not in text:
        raise ConfigError(f"{name} must look like \"127.0.0.1:8080\" (host:port)")
    host, _, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{name}: port {port!r} is not a number from 0 to 65535")
    return host or "0.0.0.0", int(port)


def _ip(text: str) -> str | None:
    """The canonical writing of an IP (brackets, port and zone removed), or None."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        return str(ipaddress.ip_address(text.partition("%")[0]))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    networks: tuple[_Network, ...] = ()
    header: str = "x-forwarded-for"

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> "TrustedProxies":
        raw = table.get("trusted_proxies", ())
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, (list, tuple)):
            raise ConfigError("listener.trusted_proxies must be a list of CIDRs, e.g. [\"10.0.0.0/8\"]")
        header = str(table.get("proxy_header", "x-forwarded-for")).lower()
        if header not in PROXY_HEADERS:
            raise ConfigError(f"listener.proxy_header must be one of {', '.join(PROXY_HEADERS)}")
        return cls(parse_networks(raw), header)

    def trusts(self, ip: str | None) -> bool:
        if not ip or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks)

    def client_ip(self, peer: str | None, environ: Mapping[str, Any]) -> str | None:
        """Client address of a WSGI request whose socket peer is ``peer``."""
        if not self.trusts(peer):
            return peer
        if self.header == "forwarded":
            hops = _forwarded_for(environ.get("HTTP_FORWARDED", ""))
        else:
            hops = [h for h in str(environ.get("HTTP_X_FORWARDED_FOR", "")).split(",") if h.strip()]
        client = peer
        for hop in reversed(hops[-MAX_HOPS:]):
            ip = _ip(hop)
            if ip is None:  # "unknown", obfuscated or junk: nothing left of it is reliable
                return client
            client = ip
            if not self.trusts(ip):
                return ip
        return client


def parse_networks(values: Iterable[Any]) -> tuple[_Network, ...]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ConfigError(f"listener.trusted_proxies: {value!r} is not an IP network (CIDR)") from None
    return tuple(networks)


def _forwarded_for(header: str) -> list[str]:
    """The ``for=`` values of an RFC 7239 Forwarded header, left to right."""
    hops = []
    for element in header.split(","):
        match = _FOR.search(element.strip())
        hops.append(match.group(1) if match else "unknown")
    return hops
