"""The contact points we own and watch: the ``[contacts]`` table of canary.toml.

Every canary carries an email (a free mailbox of ``mailbox_pool``: an address
at an ordinary provider that forwards to our relay, else an address at one of
``email_domains``), a phone number from ``phone_pool``, a link under
``portal_url`` and a hostname under ``dns_zone``.
The demo set below lets ``canary generate`` run with no configuration; it is
refused by ``canary plant`` because nobody watches it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from canary.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A real mailbox at an ordinary provider, forwarding all its mail to our relay.

    ``first_name``/``last_name`` name its holder when the provider account was
    opened in a name (the canary then carries that name); ``sex`` ("F"/"M")
    when the mailbox file says it, else inferred from the first name when
    identities are drawn (canary/identity/mailboxes.py).
    """

    address: str  # lower case
    first_name: str | None = None
    last_name: str | None = None
    sex: str | None = None

    @property
    def named(self) -> bool:
        return self.first_name is not None


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
    # Watched mailboxes at common providers (contacts.mailbox_pool_file): taken first, one canary each.
    mailbox_pool: tuple[Mailbox, ...] = ()

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


# -- the mailbox pool file (contacts.mailbox_pool_file) ----------------------------

# An address as providers hand them out: ASCII, a dotted domain. Quoted local parts
# and IP literals exist in RFC 5321 but no webmail gives one to a patient.
_ADDRESS = re.compile(r"[a-z0-9](?:[a-z0-9._%+-]{0,62}[a-z0-9_-])?@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
# A name part: letters (accents too), joined by hyphens or apostrophes ("Jean-Pierre", "D'Almeida").
_NAME_PART = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*")
MAILBOX_LINE_FORMAT = "address [F|M] [first name and last name]"


def read_mailbox_file(path: Path, *, owned_domains: tuple[str, ...] = ()) -> tuple[Mailbox, ...]:
    """The mailboxes of ``path``, one per line, in file order; ConfigError names the bad line.

        # address                   sex  first name    last name
        marie.lefort74@gmail.com         Marie         Lefort
        d.caron51@orange.fr         M    Dominique     Caron
        jp.legoff@free.fr                Jean-Pierre   Le Goff
        k.martin1988@hotmail.fr

    The sex is needed only for first names worn by both sexes (the identity
    generator says which); the last name is the rest of the line.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"contacts.mailbox_pool_file: no file at {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"contacts.mailbox_pool_file: cannot read {path}: {reason}") from None
    owned = {d.lower() for d in owned_domains}
    seen: set[str] = set()
    mailboxes = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        mailbox = _mailbox(text, owned, f"{path}:{number}")
        if mailbox.address in seen:
            raise ConfigError(f"{path}:{number}: {mailbox.address} is listed twice")
        seen.add(mailbox.address)
        mailboxes.append(mailbox)
    return tuple(mailboxes)


def _mailbox(text: str, owned: set[str], where: str) -> Mailbox:
    address, *rest = text.split()
    address = address.lower()
    if not _ADDRESS.fullmatch(address) or ".." in address:
        raise ConfigError(f"{where}: {address!r} is not an email address (expected: {MAILBOX_LINE_FORMAT})")
    if address.rpartition("@")[2] in owned:
        raise ConfigError(f"{where}: {address} is at one of contacts.email_domains; the pool is for "
                          "mailboxes at ordinary providers (gmail.com, orange.fr...)")
    sex = None
    if rest and rest[0].upper() in ("F", "M"):
        sex = rest.pop(0).upper()
        if not rest:
            raise ConfigError(f"{where}: a sex without the holder's names (expected: {MAILBOX_LINE_FORMAT})")
    if not rest:
        return Mailbox(address)
    if len(rest) < 2:
        raise ConfigError(f"{where}: give the holder's first and last name, or none "
                          f"(expected: {MAILBOX_LINE_FORMAT})")
    bad = next((part for part in rest if not _NAME_PART.fullmatch(part)), None)
    if bad is not None:
        raise ConfigError(f"{where}: {bad!r} is not a name (letters, hyphens, apostrophes; "
                          f"expected: {MAILBOX_LINE_FORMAT})")
    return Mailbox(address, first_name=_capitalised(rest[0]), last_name=" ".join(map(_capitalised, rest[1:])),
                   sex=sex)


def _capitalised(part: str) -> str:
    """"jean-pierre" and "JEAN-PIERRE" as the name data writes them, "Jean-Pierre"; mixed case is kept."""
    if not (part.islower() or part.isupper()):
        return part
    return re.sub(r"[^\W\d_]+", lambda m: m.group(0).capitalize(), part)
