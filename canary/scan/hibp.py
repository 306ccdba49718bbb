"""Have I Been Pwned domain search: breached addresses of our canary email domains.

``sync`` asks HIBP (API v3 ``breacheddomain/{domain}``) for every address of
each domain we verified with HIBP, maps them to canaries and records one hit
of channel ``breach`` per canary and breach, through the hit sink, so it
flows into the alert pipeline like any other hit. Hits already recorded for
an (address, breach) pair are not recorded again: repeated syncs never
duplicate. ``HibpSchedule`` runs it periodically (inside ``canary listen``).

The API key comes from the environment (``hibp.api_key_env``, default
HIBP_API_KEY), never from the configuration file. HIBP asks for a
descriptive User-Agent and answers 429 with Retry-After when asked too fast:
we wait as told (at most MAX_RETRIES times).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from canary.config import Setting
from canary.errors import CanaryError, ConfigError

if TYPE_CHECKING:
    from canary.registry import Registry

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://haveibeenpwned.com/api/v3"
DEFAULT_KEY_ENV = "HIBP_API_KEY"
USER_AGENT = "canary-patients/0.1 (honeytoken patient records; breach monitoring of our own domains)"
MAX_RETRIES = 5
MAX_WAIT = 600.0  # seconds: a longer Retry-After is an error, not a nap
TIMEOUT = 30.0

SETTINGS: tuple[Setting, ...] = (
    Setting("hibp.api_key_env", DEFAULT_KEY_ENV,
            "Environment variable holding the Have I Been Pwned API key (domain search).", secret_env=True),
    Setting("hibp.domains", (),
            "Canary email domains verified with HIBP; default: every contacts.email_domains entry."),
    Setting("hibp.interval", "24h",
            "How often `canary listen` syncs HIBP breach notifications (e.g. 6h, 1d); 0 disables it."),
    Setting("hibp.base_url", DEFAULT_BASE_URL, "HIBP API base URL (change for tests only)."),
)


class HibpError(CanaryError):
    """HIBP refused or failed a request."""


@dataclass
class DomainResult:
    domain: str
    status: str  # ok, none (no breached address), not-verified, error
    addresses: int = 0
    message: str = ""


@dataclass
class SyncResult:
    domains: list[DomainResult] = field(default_factory=list)
    recorded: list[int] = field(default_factory=list)  # new hit ids
    already: int = 0  # (address, breach) pairs recorded by an earlier sync
    not_canaries: int = 0  # breached addresses of our domains that are no canary

    def to_dict(self) -> dict[str, Any]:
        return {"domains": [d.__dict__ for d in self.domains], "recorded": len(self.recorded),
                "hit_ids": self.recorded, "already_recorded": self.already, "not_canaries": self.not_canaries}


class HibpClient:
    def __init__(self, api_key: str, *, base_url: str = DEFAULT_BASE_URL, session=None,
                 sleep: Callable[[float], None] = time.sleep, user_agent: str = USER_AGENT) -> None:
        if not api_key:
            raise ConfigError("no HIBP API key: set it in the environment variable named by hibp.api_key_env "
                              f"(default {DEFAULT_KEY_ENV})")
        import requests

        self._key, self._base = api_key, base_url.rstrip("/")
        self._session = session or requests.Session()
        self._sleep, self._agent = sleep, user_agent

    def breached_domain(self, domain: str) -> dict[str, list[str]] | None:
        """{alias: [breach names]} for a verified domain; None when it has no breached address."""
        import requests

        url = f"{self._base}/breacheddomain/{domain}"
        for _attempt in range(MAX_RETRIES + 1):
            try:
                response = self._session.get(url, headers={"hibp-api-key": self._key, "user-agent": self._agent},
                                             timeout=TIMEOUT)
            except requests.RequestException as err:
                raise HibpError(f"HIBP unreachable for {domain}: {type(err).__name__}") from None
            if response.status_code == 429:
                wait = _retry_after(response.headers.get("retry-after"))
                if wait > MAX_WAIT:
                    raise HibpError(f"HIBP asks to wait {wait:.0f} s for {domain}: try later")
                log.info("HIBP rate limit on %s: waiting %.1f s", domain, wait)
                self._sleep(wait)
                continue
            if response.status_code == 404:
                return None
            if response.status_code in (401, 403):
                raise HibpError(f"HIBP refused {domain} ({response.status_code}): check the API key and that "
                                "the domain is verified in the HIBP domain search dashboard")
            if response.status_code != 200:
                raise HibpError(f"HIBP answered {response.status_code} for {domain}")
            data = response.json()
            if not isinstance(data, dict):
                raise HibpError(f"HIBP sent an unexpected answer for {domain}")
            return {str(alias): [str(b) for b in breaches] for alias, breaches in data.items()
                    if isinstance(breaches, list)}
        raise HibpError(f"HIBP still rate-limits {domain} after {MAX_RETRIES} retries: try later")


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 2.0
    except ValueError:
        return 2.0


def settings(raw: Mapping[str, Any], email_domains: Sequence[str], environ: Mapping[str, str] = os.environ
             ) -> dict[str, Any]:
    """Resolved [hibp] settings: api_key, domains, interval (seconds), base_url."""
    table = raw.get("hibp") or {}
    key_env = str(table.get("api_key_env") or DEFAULT_KEY_ENV)
    domains = table.get("domains") or list(email_domains)
    from canary.alerts.config import parse_duration

    interval = table.get("interval", "24h")
    seconds = 0.0 if str(interval) in ("0", "") else parse_duration(str(interval), "hibp.interval").total_seconds()
    return {"api_key": environ.get(key_env, ""), "key_env": key_env, "domains": [d.lower() for d in domains],
            "interval": seconds, "base_url": str(table.get("base_url") or DEFAULT_BASE_URL)}


def sync(registry: "Registry", client: HibpClient, domains: Sequence[str], sink) -> SyncResult:
    """Fetch each domain's breached addresses and record new breach hits on canaries."""
    from canary.hits.hit import Channel, Observation
    from canary.model import TokenKind
    from canary.registry import scanstore

    result = SyncResult()
    known = scanstore.breach_hits(registry)
    for domain in domains:
        try:
            found = client.breached_domain(domain)
        except HibpError as err:
            result.domains.append(DomainResult(domain, "error", message=str(err)))
            continue
        if not found:
            result.domains.append(DomainResult(domain, "none"))
            continue
        result.domains.append(DomainResult(domain, "ok", addresses=len(found)))
        for alias, breaches in sorted(found.items()):
            address = f"{alias}@{domain}".lower()
            if registry.find_token(address, TokenKind.EMAIL) is None:
                result.not_canaries += 1
                continue
            for breach in dict.fromkeys(breaches):
                if (address, breach) in known:
                    result.already += 1
                    continue
                hit = sink.record(Observation(channel=Channel.BREACH, kind=TokenKind.EMAIL, value=address,
                                              remote=None, evidence={"breach": breach, "domain": domain,
                                                                     "via": "haveibeenpwned"}))
                known.add((address, breach))
                result.recorded.append(hit.id)
    return result


class HibpSchedule:
    """Runs ``job`` (a sync) every ``interval`` seconds in a thread until ``stop``."""

    def __init__(self, job: Callable[[], object], interval: float, *, first_delay: float = 5.0) -> None:
        self._job, self._interval, self._first = job, interval, first_delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def start(self) -> None:
        if self._interval <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="hibp-sync", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        delay = self._first
        while not self._stop.wait(delay):
            try:
                self._job()
            except Exception:  # logged; the next run tries again
                log.exception("HIBP sync failed")
            self.runs += 1
            delay = self._interval

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def sync_configured(registry: "Registry", config, environ: Mapping[str, str] = os.environ, *,
                    domains: Sequence[str] | None = None, session=None,
                    sleep: Callable[[float], None] = time.sleep) -> SyncResult:
    """``sync`` with the settings of canary.toml and the normal alert pipeline."""
    from canary.alerts.service import build_alerting
    from canary.hits.sink import RegistryHitSink
    from canary.hits.tokenindex import TokenIndex

    chosen = settings(config.raw, config.contacts.email_domains, environ)
    client = HibpClient(chosen["api_key"], base_url=chosen["base_url"], session=session, sleep=sleep)
    alerting = build_alerting(registry, config.raw, environ)
    sink = RegistryHitSink(registry, TokenIndex(registry), alerter=alerting.alerter)
    return sync(registry, client, [d.lower() for d in (domains or chosen["domains"])], sink)


def schedule_for_listen(registry: "Registry", config, environ: Mapping[str, str] = os.environ
                        ) -> HibpSchedule | None:
    """The periodic sync for ``canary listen``, or None when no key or interval is set."""
    chosen = settings(config.raw, config.contacts.email_domains, environ)
    if not chosen["api_key"] or chosen["interval"] <= 0:
        return None
    return HibpSchedule(lambda: sync_configured(registry, config, environ), chosen["interval"])
