"""The contact points we own and watch: the ``[contacts]`` table of canary.toml.

Every canary carries an email at one of ``email_domains``, a phone number from
``phone_pool``, a link under ``portal_url`` and a hostname under ``dns_zone``.
The demo set below lets ``canary generate`` run with no configuration; it is
refused by ``canary plant`` because nobody watches it.
"""

from __future__ import annotations

from dataclasses import dataclass

from canary.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ContactPoints:
    email_domains: tuple[str, ...]
    dns_zone: str
    portal_url: str  # base URL; the access code is appended as a path segment
    phone_pool: tuple[str, ...]  # E.164, e.g. "+33612345678"
    demo: bool = False
    # At most this many live canaries of one source per email domain and per 10,000-number
    # phone block (None: no limit). canary.toml sets DEFAULT_MAX_PER_DOMAIN / _BLOCK unless told.
    max_per_email_domain: int | None = None
    max_per_phone_block: int | None = None

    def require_production(self) -> None:
        """Refuse to plant canaries whose contact points nobody watches."""
        if self.demo or set(self.email_domains) & set(DEMO_EMAIL_DOMAINS):
            raise ConfigError(
                "the [contacts] email domains are the built-in demo ones: "
                "configure domains you own in canary.toml before planting"
            )
        if self.dns_zone == DEMO_DNS_ZONE:
            raise ConfigError(
                "[contacts] dns_zone is the built-in demo zone: configure a zone you own"
            )
        from canary.phones import is_demo_number  # lazy: keeps this module light

        demo = [n for n in self.phone_pool if is_demo_number(n)]
        if demo:
            raise ConfigError(
                f"[contacts] phone pool holds {len(demo)} demo/fiction numbers "
                f"(e.g. {demo[0]}): use numbers you own"
            )


# A domain or a number block that only canaries use, and many of them, is a tell
# (docs/concealment.md): "a few" per domain and per block, by default.
DEFAULT_MAX_PER_DOMAIN = 3
DEFAULT_MAX_PER_BLOCK = 2


# Demo contact points: they look like an ordinary webmail and appointment
# portal, but are NOT watched by anyone. The phone numbers come from the ARCEP
# ranges reserved for fiction, so they can never reach a real person.
DEMO_EMAIL_DOMAINS: tuple[str, ...] = ("courriel-sante.fr", "messagerie-mel.fr")
DEMO_DNS_ZONE = "rdv-portail.fr"
DEMO_PORTAL_URL = "https://mon-espace.rdv-portail.fr/acces/"


def demo_contacts() -> ContactPoints:
    from canary.phones import demo_pool  # lazy: the pool is built on demand

    return ContactPoints(
        email_domains=DEMO_EMAIL_DOMAINS,
        dns_zone=DEMO_DNS_ZONE,
        portal_url=DEMO_PORTAL_URL,
        phone_pool=demo_pool(),
        demo=True,
    )
