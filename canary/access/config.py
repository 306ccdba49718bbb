"""The ``[access]`` table: when canary reads become bulk access, and which audit source is which database.

    [access]
    burst_canaries = 3        # distinct canaries read by one account ...
    burst_window = "1h"       # ... within this window: bulk access (critical)

    [access.sources]          # AuditSourceID (or FHIR source.observer) -> source name
    "DPI-PROD" = "dpi-brest"

A small patient number ("4411") only names a canary when the event's audit
source maps to that canary's source (see canary/access/match.py); NIR and
uuids match whatever the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from typing import Any, Mapping, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from canary.alerts.config import parse_duration
from canary.config import Setting
from canary.errors import ConfigError

SETTINGS: tuple[Setting, ...] = (
    Setting("access.burst_canaries", 3,
            "Distinct canaries read by one account within access.burst_window that make a bulk "
            "access (critical alert); fewer are each an unjustified access (warning)."),
    Setting("access.burst_window", "1h",
            "Window of access.burst_canaries (a duration: \"30m\", \"1h\", \"1d\")."),
    Setting("access.sources", {},
            "Table AuditSourceID -> source name: which application's audit trail is which "
            "registered source (e.g. \"DPI-PROD\" = \"dpi-brest\"). Needed for patient numbers; "
            "NIR and uuids match without it."),
    Setting("access.audit_url_env", {},
            "Table source name -> environment variable holding the URL of a read-only account that "
            "`canary access poll` reads that source's audit tables with (e.g. \"dpi-quimper\" = "
            "\"DPI_AUDIT_URL\"); unset for a source: its own URL (the seeder's account) is used, with a "
            "warning. See docs/access.md for the grants."),
    Setting("access.audit_timezone", "Europe/Paris",
            "Time zone of the times an application writes without one in its audit tables "
            "(OpenEMR's log.date): used by `canary access poll`."),
)


@dataclass(frozen=True, slots=True)
class AccessConfig:
    burst_canaries: int = 3
    burst_window: timedelta = timedelta(hours=1)
    sources: Mapping[str, str] = field(default_factory=dict)
    audit_timezone: str = "Europe/Paris"
    audit_url_env: Mapping[str, str] = field(default_factory=dict)  # source -> env var of a read-only URL

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.audit_timezone)

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None) -> Self:
        table = table or {}
        burst = table.get("burst_canaries", 3)
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigError("access.burst_canaries must be a whole number of at least 1")
        sources = table.get("sources", {})
        if not isinstance(sources, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) and k.strip() and v.strip()
                for k, v in sources.items()):
            raise ConfigError("[access.sources] must map AuditSourceID strings to source names")
        audit_urls = table.get("audit_url_env", {})
        if not isinstance(audit_urls, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) and k.strip() and v.strip()
                for k, v in audit_urls.items()):
            raise ConfigError("[access.audit_url_env] must map source names to environment variable names")
        zone = table.get("audit_timezone", "Europe/Paris")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigError(f"access.audit_timezone: {zone!r} is not a time zone (e.g. \"Europe/Paris\")") from None
        return cls(burst_canaries=burst, audit_timezone=zone,
                   audit_url_env={k.strip(): v.strip() for k, v in audit_urls.items()},
                   burst_window=parse_duration(table.get("burst_window", "1h"), "access.burst_window"),
                   sources={k.strip(): v.strip() for k, v in sources.items()})
