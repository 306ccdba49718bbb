"""Open-file descriptors: every connection a front end accepts holds one.

A listener whose caps add up to more descriptors than its limit lets an
attacker take every front end down by holding connections on one (1,100 idle
SMTP sessions under the default 1,024 did it to the portal). ``start`` raises
the process's soft limit to what the caps need, up to the hard limit, and
warns when that is not enough; the systemd unit sets ``LimitNOFILE`` and
``canary doctor`` checks the limit.
"""

from __future__ import annotations

import resource
from typing import Any, Mapping

# Descriptors the listener holds besides its connections: sockets it listens on, the
# registry, log and journal files, the outbox's connections, Python's own.
BASE_DESCRIPTORS = 128
ADMIN_CONNECTIONS = 50  # listener/service.py serves the admin address with this cap


def descriptors_needed(table: Mapping[str, Any]) -> int:
    """Descriptors the listener may hold at once with these settings (its connection caps)."""
    def number(key: str, default: int) -> int:
        value = table.get(key, default)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default

    http = number("http_connection_limit", 500)
    https = http if table.get("https") else 0  # the HTTPS server has the same cap (listener/tlsconn.py)
    return (BASE_DESCRIPTORS + ADMIN_CONNECTIONS + http + https
            + number("dns_tcp_max_connections", 256) + number("smtp_max_connections", 200))


def raise_descriptor_limit(needed: int) -> tuple[int, int]:
    """Raise this process's soft descriptor limit towards ``needed`` (never above the hard
    limit); returns (soft, needed) as they end up."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, needed


