"""Connection caps shared by the TCP front ends: in total and per client network.

One host holding a thousand idle SMTP sessions, or 256 DNS-over-TCP
connections trickling a byte every few seconds, used to take every slot (and
descriptors the other front ends need). ``ConnectionGate.admit(ip)`` says
whether one more connection from that address fits, under the total cap and
under the cap of its network (/24 IPv4, /56 IPv6: what one client usually
holds, as for DNS response rate limiting); ``release(ip)`` when it closes.
Only the event loop thread of a front end calls a gate, but a lock keeps it
correct if that changes; it costs less than a microsecond.
"""

from __future__ import annotations

import ipaddress
import threading

IPV4_PREFIX, IPV6_PREFIX = 24, 56


def client_network(ip: str | None) -> str:
    """The network a client address counts in ("?" when unknown)."""
    if not ip:
        return "?"
    try:
        address = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return "?"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class ConnectionGate:
    def __init__(self, total: int, per_network: int) -> None:
        self.total = total
        self.per_network = per_network
        self._open = 0
        self._by_network: dict[str, int] = {}
        self._lock = threading.Lock()
        self.refused_total = 0  # over the total cap
        self.refused_network = 0  # over the per-network cap

    def admit(self, ip: str | None) -> bool:
        network = client_network(ip)
        with self._lock:
            if self._open >= self.total:
                self.refused_total += 1
                return False
            held = self._by_network.get(network, 0)
            if held >= self.per_network:
                self.refused_network += 1
                return False
            self._open += 1
            self._by_network[network] = held + 1
            return True

    def release(self, ip: str | None) -> None:
        network = client_network(ip)
        with self._lock:
            held = self._by_network.get(network, 0)
            if held <= 0:
                return
            self._open -= 1
            if held == 1:
                del self._by_network[network]
            else:
                self._by_network[network] = held - 1

    @property
    def open(self) -> int:
        return self._open
