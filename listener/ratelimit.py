"""Response rate limiting (RRL) for the UDP DNS listener.

UDP source addresses can be forged, so an open DNS server can be used to
flood a victim with answers (amplification). As in BIND's RRL, every client
network (/24 for IPv4, /56 for IPv6) has a token bucket of ``rate``
responses per second (burst: one second's worth). Past it, every
``slip``-th response is sent truncated (TC=1: a real client retries over
TCP, which cannot be forged) and the others are dropped. Every response
counts, REFUSED ones included. TCP is not limited.

The table is bounded: when it is full, networks whose bucket has refilled
are forgotten; if none has, the table is cleared (a forged flood from many
networks then costs at most one burst per network).
"""

from __future__ import annotations

import ipaddress

ANSWER, SLIP, DROP = 0, 1, 2


class RateLimiter:
    def __init__(self, rate: float, slip: int = 2, burst: float | None = None, max_entries: int = 100_000) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 (use no RateLimiter to disable limiting)")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate, 1.0))
        self.slip = int(slip)
        self.max_entries = max_entries
        self._buckets: dict[object, list] = {}  # key -> [tokens, last update, responses limited]
        self.slipped = 0
        self.dropped = 0

    def check(self, host: str, now: float) -> int:
        """ANSWER, SLIP or DROP for one response to ``host`` at monotonic time ``now``."""
        key = network_key(host)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_entries:
                self._sweep(now)
            self._buckets[key] = [self.burst - 1.0, now, 0]
            return ANSWER
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return ANSWER
        bucket[0] = tokens
        bucket[2] += 1
        if self.slip and bucket[2] % self.slip == 0:
            self.slipped += 1
            return SLIP
        self.dropped += 1
        return DROP

    def __len__(self) -> int:
        return len(self._buckets)

    def _sweep(self, now: float) -> None:
        full = [k for k, (tokens, last, _) in self._buckets.items()
                if tokens + (now - last) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_entries:
            self._buckets.clear()


def network_key(host: str) -> object:
    """The client network an address belongs to: /24 (IPv4) or /56 (IPv6)."""
    if "." in host:  # IPv4, or IPv4-mapped IPv6 ("::ffff:192.0.2.1")
        return host[:host.rfind(".")]
    try:
        return ipaddress.IPv6Address(host.split("%", 1)[0]).packed[:7]
    except ValueError:
        return host
