"""Classifying a hit: who or what most likely used the contact point.

``classify(observation, recent, rules)`` is a pure function of the
observation and the canary's recent hits (read by the hit sink from the
registry in the same transaction). The classification drives alerting
(``canary.alerts.policy``) but never drops a hit. Rules, first match wins:

1. no canary owns the value -> UNMATCHED (recorded, never alerted);
2. the front end saw the canary's credentials used (evidence
   ``credential`` true) -> CREDENTIAL_USE, even from an internal network:
   nobody has a legitimate reason to log in as a fake patient;
3. remote address in ``listener.internal_networks`` -> INTERNAL; SMS/voice
   sender in ``listener.internal_senders`` -> INTERNAL (the establishment's
   own reminder gateways);
4. DNS query from the resolver (same /24, IPv6 /48) that already asked for
   this canary within RESOLVER_RECHECK -> RESOLVER_RECHECK;
5. HTTP from a known crawler, preview bot or mail link scanner (user agent),
   a HEAD/OPTIONS request, or within SCANNER_DELAY after our SMTP accepted a
   mail for the same canary -> AUTOMATED;
6. anything else -> HUMAN. Command-line tools and HTTP libraries (curl, wget,
   python-requests...) are deliberately HUMAN: a script fed with a link that
   exists only in one database is the person holding that database at work.

Evidence keys read (front ends should use them): ``credential`` (bool),
``user_agent``, ``method`` (HTTP), ``from`` (SMS/voice caller or sender ID).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping, Self, Sequence

from canary.config import Setting
from canary.errors import ConfigError
from canary.hits.hit import Channel, Classification, Hit, Observation

RESOLVER_RECHECK = timedelta(minutes=30)
SCANNER_DELAY = timedelta(seconds=30)

# Lower-case substrings of user agents of crawlers, link-preview bots and mail
# security scanners. Deliberately absent: curl, wget, python-requests,
# Go-http-client and other tools a person runs (see rule 6).
BOT_USER_AGENTS: tuple[str, ...] = (
    # search engines and generic crawlers
    "googlebot", "google-inspectiontool", "adsbot-google", "mediapartners-google",
    "apis-google", "googleother", "google-safety", "bingbot", "bingpreview", "msnbot",
    "yandexbot", "baiduspider", "duckduckbot", "applebot", "petalbot", "sogou", "exabot",
    "ahrefsbot", "semrushbot", "mj12bot", "dotbot", "ccbot", "gptbot", "claudebot",
    "bytespider", "amazonbot", "crawler", "spider", "bot/", "bot;", "+http",
    # link previews in chat and social apps
    "slackbot", "slack-imgproxy", "facebookexternalhit", "facebot", "twitterbot",
    "linkedinbot", "whatsapp", "telegrambot", "discordbot", "skypeuripreview",
    "mattermost-bot", "viber", "pinterestbot", "redditbot", "embedly", "iframely",
    "vkshare", "qwantify",
    # mail clients, mail security gateways and link scanners
    "microsoft office", "ms-office", "msoffice", "microsoft outlook", "safelinks",
    "googleimageproxy", "yahoomailproxy", "proofpoint", "urldefense", "mimecast",
    "barracuda", "trendmicro", "trend micro", "symantec", "forcepoint", "sophos",
    "fireeye", "ironport", "zscaler", "paloalto", "checkpoint",
    # headless browsers, uptime checks and internet scanners
    "headlesschrome", "phantomjs", "uptimerobot", "pingdom", "statuscake", "site24x7",
    "censys", "shodan", "zgrab", "masscan", "nmap", "expanse", "internet-measurement",
)

SETTINGS: tuple[Setting, ...] = (
    Setting("listener.internal_networks", (),
            "Networks (CIDR) of the establishment and of our own gateways: hits from them are "
            "classified internal (e.g. a hospital mail server sending reminders), alerted in "
            "digests only."),
    Setting("listener.internal_senders", (),
            "Phone numbers (E.164 or French writing) and SMS sender IDs of the establishment's "
            "own reminder gateways: SMS and calls from them are classified internal."),
    Setting("listener.bot_user_agents", (),
            "More user-agent substrings (case-insensitive) of crawlers or link scanners, added "
            "to the built-in list: HTTP hits carrying them are classified automated."),
)

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ClassifyRules:
    internal_networks: tuple[_Network, ...] = ()
    internal_senders: frozenset[str] = frozenset()  # normalised (see _sender)
    bot_user_agents: tuple[str, ...] = BOT_USER_AGENTS
    resolver_recheck: timedelta = RESOLVER_RECHECK
    scanner_delay: timedelta = SCANNER_DELAY

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Self:
        """From the ``[listener]`` table; its other keys belong to the front ends."""
        networks = []
        for text in _strings(table.get("internal_networks", ()), "listener.internal_networks"):
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ConfigError(
                    f"listener.internal_networks: {text!r} is not a network (e.g. 10.0.0.0/8)"
                ) from None
        senders = frozenset(
            _sender(s) for s in _strings(table.get("internal_senders", ()), "listener.internal_senders")
        )
        extra = tuple(s.lower() for s in _strings(table.get("bot_user_agents", ()),
                                                  "listener.bot_user_agents"))
        return cls(internal_networks=tuple(networks), internal_senders=senders,
                   bot_user_agents=BOT_USER_AGENTS + extra)

    @property
    def lookback(self) -> timedelta:
        """How far back ``classify`` needs the canary's hits."""
        return max(self.resolver_recheck, self.scanner_delay)


def classify(observation: Observation, recent: Sequence[Hit], rules: ClassifyRules,
             *, matched: bool = True) -> Classification:
    """The classification of one observation given the canary's recent hits."""
    if not matched:
        return Classification.UNMATCHED
    evidence = observation.evidence or {}
    if _truthy(evidence.get("credential")):
        return Classification.CREDENTIAL_USE
    remote = _address(observation.remote)
    if remote is not None and any(remote in net for net in rules.internal_networks
                                  if net.version == remote.version):
        return Classification.INTERNAL
    channel = Channel(observation.channel)
    if channel in (Channel.SMS, Channel.VOICE):
        sender = evidence.get("from")
        if isinstance(sender, str) and _sender(sender) in rules.internal_senders:
            return Classification.INTERNAL
    at = observation.at
    if channel is Channel.DNS and remote is not None and at is not None:
        if any(hit.channel is Channel.DNS and _same_resolver(remote, hit.remote)
               and timedelta(0) <= at - hit.at <= rules.resolver_recheck for hit in recent):
            return Classification.RESOLVER_RECHECK
    if channel is Channel.HTTP:
        if _is_bot(user_agent(evidence), rules.bot_user_agents):
            return Classification.AUTOMATED
        if str(evidence.get("method", "")).upper() in ("HEAD", "OPTIONS"):
            return Classification.AUTOMATED
        if at is not None and any(hit.channel is Channel.SMTP
                                  and timedelta(0) <= at - hit.at <= rules.scanner_delay
                                  for hit in recent):
            return Classification.AUTOMATED
    return Classification.HUMAN


def user_agent(evidence: Mapping[str, Any]) -> str:
    """The user agent from evidence (``user_agent``, ``User-Agent`` or in ``headers``)."""
    for key in ("user_agent", "User-Agent", "user-agent", "ua"):
        value = evidence.get(key)
        if isinstance(value, str):
            return value
    headers = evidence.get("headers")
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if str(key).lower() == "user-agent" and isinstance(value, str):
                return value
    return ""


def _is_bot(agent: str, markers: Sequence[str]) -> bool:
    agent = agent.lower()
    return bool(agent) and any(marker in agent for marker in markers)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1", "yes"))


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _same_resolver(remote: ipaddress.IPv4Address | ipaddress.IPv6Address, other: str | None) -> bool:
    """Same resolver network: resolvers of one operator answer from neighbouring addresses."""
    previous = _address(other)
    if previous is None or previous.version != remote.version:
        return False
    prefix = 24 if remote.version == 4 else 48
    return ipaddress.ip_network(f"{remote}/{prefix}", strict=False) == \
        ipaddress.ip_network(f"{previous}/{prefix}", strict=False)


def _sender(text: str) -> str:
    """A phone number in E.164 when it is one, else the sender ID in lower case."""
    text = text.strip()
    digits = text.replace(" ", "").replace(".", "").replace("-", "")
    if digits.lstrip("+").isdigit() and len(digits.lstrip("+")) >= 6:
        from canary.phones import to_e164

        return to_e164(text) or digits
    return text.lower()


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{name} must be a list of strings")
    return tuple(v.strip() for v in value)
