"""Tokens: the contact points of an identity that we watch, normalised.

The registry stores tokens and the listener looks them up; both must agree
on one writing per value, which ``normalise`` defines.
"""

from __future__ import annotations

from canary.model import Identity, Token, TokenKind


def normalise(kind: TokenKind | str, value: str) -> str:
    """The one writing of ``value`` used for storage and lookup.

    email: trimmed, lower case. phone: E.164 from any common French writing
    (unparseable input comes back trimmed, so a lookup simply finds nothing).
    url_code, dns_label, portal_login: trimmed, lower case (lookups are
    case-insensitive). nir: no spaces or dots, upper case (2A/2B).
    """
    kind = TokenKind(kind)
    value = value.strip()
    if kind is TokenKind.PHONE:
        from canary.phones import to_e164

        return to_e164(value) or value
    if kind is TokenKind.NIR:
        return value.replace(" ", "").replace(".", "").upper()
    return value.lower()


def tokens_of(identity: Identity) -> list[Token]:
    """Every watched contact point of an identity, normalised.

    The portal password is not a token: a login attempt is recognised by its
    login, and the password stays in the identity for the seeders.
    """
    pairs = [
        (TokenKind.EMAIL, identity.email),
        (TokenKind.PHONE, identity.phone),
    ]
    if identity.phone2:
        pairs.append((TokenKind.PHONE, identity.phone2))
    pairs += [
        (TokenKind.URL_CODE, identity.url_code),
        (TokenKind.DNS_LABEL, identity.dns_label),
        (TokenKind.PORTAL_LOGIN, identity.portal_login),
        (TokenKind.NIR, identity.nir),
    ]
    return [Token(kind, normalise(kind, value)) for kind, value in pairs]
