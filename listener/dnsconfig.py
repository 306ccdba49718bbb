"""Settings of the DNS listener: the DNS keys of the ``[listener]`` table.

``DnsConfig.from_table(table)`` reads them (other listeners' keys in the same
table are ignored) and raises ConfigError with one line on a bad value. The
zones themselves come from ``[contacts]`` (dns_zone, email_domains) and are
handed to ZoneSet separately.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping

from canary.config import Setting
from canary.errors import ConfigError

DEFAULT_BIND = "127.0.0.1:5353"
DEFAULT_SPF = "v=spf1 mx -all"
DEFAULT_DMARC = "v=DMARC1; p=reject; rua=mailto:dmarc@{domain}"

SETTINGS: tuple[Setting, ...] = (
    Setting("listener.dns", DEFAULT_BIND,
            "Address(es) the DNS listener binds, UDP and TCP on the same port: \"host:port\" "
            "or a list; \"[::]:53\" for IPv6. Port 53 needs root or CAP_NET_BIND_SERVICE."),
    Setting("listener.public_ip", "127.0.0.1",
            "Public IPv4 address of the listener host: A record of every name under the zones "
            "(canary hostnames point at the HTTP listener) and default glue of ns1/ns2."),
    Setting("listener.public_ipv6", None,
            "Public IPv6 address of the listener host (AAAA records); none by default."),
    Setting("listener.dns_nameservers", None,
            "Name servers of the zones, e.g. [\"ns1.example.fr=203.0.113.5\", "
            "\"ns2.example.fr=198.51.100.7,2001:db8::7\"]; default ns1/ns2.<dns_zone> at public_ip."),
    Setting("listener.dns_ttl", 300,
            "TTL in seconds of A/AAAA answers and of negative answers (short, so re-resolution is seen)."),
    Setting("listener.dns_zone_ttl", 3600,
            "TTL in seconds of SOA, NS, MX, TXT and CAA records."),
    Setting("listener.dns_soa_serial", None,
            "SOA serial; default YYYYMMDD00 of the day the listener starts."),
    Setting("listener.dns_mail_host", None,
            "Mail exchanger (MX) of every email domain; default mx.<domain> at public_ip."),
    Setting("listener.dns_spf", DEFAULT_SPF, "SPF TXT record of every email domain."),
    Setting("listener.dns_dmarc", DEFAULT_DMARC,
            "DMARC TXT record at _dmarc.<domain>; {domain} is replaced by the email domain."),
    Setting("listener.dns_caa", (),
            "CAA: certificate authorities allowed to issue for the zones, e.g. [\"letsencrypt.org\"]; "
            "none by default."),
    Setting("listener.dns_rate_limit", 100,
            "Response rate limit per client network (/24 IPv4, /56 IPv6), responses per second over "
            "UDP; beyond it answers are dropped or truncated (see dns_rate_slip). 0 disables it."),
    Setting("listener.dns_rate_slip", 2,
            "When rate limited, every Nth response is sent truncated (TC=1, the client retries over "
            "TCP) and the others are dropped; 0 drops them all."),
    Setting("listener.dns_tcp_max_connections", 256, "Maximum simultaneous DNS-over-TCP connections."),
    Setting("listener.dns_tcp_idle_timeout", 10.0,
            "Seconds a DNS-over-TCP connection may go without a complete query before it is closed "
            "(a byte now and then does not count)."),
    Setting("listener.dns_tcp_max_per_network", 16,
            "Simultaneous DNS-over-TCP connections from one client network (/24 IPv4, /56 IPv6)."),
    Setting("listener.dns_tcp_max_duration", 120.0,
            "Seconds a DNS-over-TCP connection may last in all, however active."),
    Setting("listener.dns_hit_queue", 50000,
            "In-memory queue of DNS hits, used only without the hit journal (tests, benchmarks); "
            "`canary listen` journals every hit instead (listener.hit_journal)."),
    Setting("listener.dns_recv_buffer", 4194304,
            "UDP socket receive buffer in bytes, to absorb bursts (capped by net.core.rmem_max)."),
    Setting("listener.dns_uvloop", True, "Run the DNS event loop on uvloop when it is installed."),
)


@dataclass(frozen=True, slots=True)
class NameServer:
    name: str  # lower case, no trailing dot
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DnsConfig:
    binds: tuple[tuple[str, int], ...] = (("127.0.0.1", 5353),)
    public_ip: str = "127.0.0.1"
    public_ipv6: str | None = None
    nameservers: tuple[NameServer, ...] = ()  # empty: ns1/ns2.<dns_zone> at public_ip(v6)
    ttl: int = 300
    zone_ttl: int = 3600
    soa_serial: int | None = None
    mail_host: str | None = None
    spf: str = DEFAULT_SPF
    dmarc: str = DEFAULT_DMARC
    caa: tuple[str, ...] = ()
    rate_limit: float = 100.0
    rate_slip: int = 2
    tcp_max_connections: int = 256
    tcp_idle_timeout: float = 10.0
    tcp_max_per_network: int = 16
    tcp_max_duration: float = 120.0
    hit_queue: int = 50000
    recv_buffer: int = 4194304
    uvloop: bool = True

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None) -> "DnsConfig":
        """Read the DNS keys of the ``[listener]`` table."""
        t = dict(table or {})
        d = cls()
        return cls(
            binds=_binds(t.get("dns", DEFAULT_BIND)),
            public_ip=_ip(t.get("public_ip", d.public_ip), "listener.public_ip", 4),
            public_ipv6=_ip(t["public_ipv6"], "listener.public_ipv6", 6) if t.get("public_ipv6") else None,
            nameservers=_nameservers(t.get("dns_nameservers")),
            ttl=_int(t.get("dns_ttl", d.ttl), "listener.dns_ttl", 0, 604800),
            zone_ttl=_int(t.get("dns_zone_ttl", d.zone_ttl), "listener.dns_zone_ttl", 0, 604800),
            soa_serial=(_int(t["dns_soa_serial"], "listener.dns_soa_serial", 0, 2**32 - 1)
                        if t.get("dns_soa_serial") is not None else None),
            mail_host=check_name(t["dns_mail_host"], "listener.dns_mail_host") if t.get("dns_mail_host") else None,
            spf=_txt(t.get("dns_spf", d.spf), "listener.dns_spf"),
            dmarc=_txt(t.get("dns_dmarc", d.dmarc), "listener.dns_dmarc"),
            caa=tuple(check_name(c, "listener.dns_caa") for c in _list(t.get("dns_caa", ()), "listener.dns_caa")),
            rate_limit=float(_number(t.get("dns_rate_limit", d.rate_limit), "listener.dns_rate_limit", 0, 10**9)),
            rate_slip=_int(t.get("dns_rate_slip", d.rate_slip), "listener.dns_rate_slip", 0, 100),
            tcp_max_connections=_int(t.get("dns_tcp_max_connections", d.tcp_max_connections),
                                     "listener.dns_tcp_max_connections", 1, 100000),
            tcp_idle_timeout=float(_number(t.get("dns_tcp_idle_timeout", d.tcp_idle_timeout),
                                           "listener.dns_tcp_idle_timeout", 0.1, 3600)),
            tcp_max_per_network=_int(t.get("dns_tcp_max_per_network", d.tcp_max_per_network),
                                     "listener.dns_tcp_max_per_network", 1, 100000),
            tcp_max_duration=float(_number(t.get("dns_tcp_max_duration", d.tcp_max_duration),
                                           "listener.dns_tcp_max_duration", 1, 86400)),
            hit_queue=_int(t.get("dns_hit_queue", d.hit_queue), "listener.dns_hit_queue", 1, 10**7),
            recv_buffer=_int(t.get("dns_recv_buffer", d.recv_buffer), "listener.dns_recv_buffer", 0, 2**30),
            uvloop=_bool(t.get("dns_uvloop", d.uvloop), "listener.dns_uvloop"),
        )


# -- validation -------------------------------------------------------------


def check_name(value: Any, what: str) -> str:
    """A host or domain name: lower case, no trailing dot, LDH-ish labels."""
    if not isinstance(value, str) or not value.strip(". "):
        raise ConfigError(f"{what} must be a domain name, got {value!r}")
    name = value.strip().rstrip(".").lower()
    labels = name.split(".")
    ok = len(name) <= 253 and all(
        0 < len(lab) <= 63 and lab.isascii() and all(c.isalnum() or c in "-_" for c in lab) for lab in labels
    )
    if not ok:
        raise ConfigError(f"{what}: {value!r} is not a valid domain name")
    return name


def _binds(value: Any) -> tuple[tuple[str, int], ...]:
    items = _list(value, "listener.dns")
    if not items:
        raise ConfigError("listener.dns must name at least one \"host:port\" address")
    return tuple(_bind(v) for v in items)


def _bind(value: str) -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not 0 <= number <= 65535:
        raise ConfigError(f"listener.dns: {value!r} is not \"ip:port\" (e.g. \"127.0.0.1:5353\", \"[::]:53\")")
    return host, number


def _ip(value: Any, what: str, version: int) -> str:
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        address = None
    if address is None or address.version != version:
        raise ConfigError(f"{what} must be an IPv{version} address, got {value!r}")
    return str(address)


def _nameservers(value: Any) -> tuple[NameServer, ...]:
    if value is None:
        return ()
    servers = []
    for item in _list(value, "listener.dns_nameservers"):
        name, _, ips = item.partition("=")
        v4, v6 = [], []
        for raw in filter(None, (p.strip() for p in ips.split(","))):
            try:
                address = ipaddress.ip_address(raw)
            except ValueError:
                raise ConfigError(f"listener.dns_nameservers: {raw!r} in {item!r} is not an IP address") from None
            (v4 if address.version == 4 else v6).append(str(address))
        servers.append(NameServer(check_name(name, "listener.dns_nameservers"), tuple(v4), tuple(v6)))
    if not servers:
        raise ConfigError("listener.dns_nameservers must list at least one name server")
    return tuple(servers)


def _list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} must be a string or a list of strings")
    return list(value)


def _txt(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.isascii() or not value.isprintable() or len(value) > 1000:
        raise ConfigError(f"{what} must be printable ASCII text of at most 1000 characters")
    return value


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{what} must be an integer from {low} to {high}, got {value!r}")
    return value


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigError(f"{what} must be a number from {low:g} to {high:g}, got {value!r}")
    return value


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{what} must be true or false, got {value!r}")
    return value
