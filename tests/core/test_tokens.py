from datetime import date

import pytest

from canary.model import Address, Birthplace, Identity, Practitioner, Sex, Token, TokenKind
from canary.tokens import normalise, tokens_of


def make_identity(**changes) -> Identity:
    fields = dict(
        sex=Sex.FEMALE, civility="Mme", first_names=("Hélène", "Marie"), last_name="Le Goff",
        birth_name="Le Goff", birth_date=date(1958, 4, 2),
        birthplace=Birthplace("2A004", "Ajaccio", "2A"), nir="258042A004012XX",
        address=Address("3 rue de l'Église", "35000", "Rennes", "35238", "35"),
        phone="+33612345678", phone2=None, email="Helene.LeGoff58@Courriel-Sante.fr ",
        url_code="ABCDEFGHIJKLMNOP", portal_url="https://x/acces/ABCDEFGHIJKLMNOP", dns_label="Dossier-K3Q9",
        hostname="dossier-k3q9.zone.fr", portal_login="HLeGoff58", portal_password="Soleil2019!",
        blood_group="A+", allergies=(), treatments=(), gp=Practitioner("Dr", "Paul", "Roux", "10005173140"),
    )
    fields.update(changes)
    return Identity(**fields)


@pytest.mark.parametrize("kind, raw, expected", [
    (TokenKind.EMAIL, "  Jean.Dupont@Example.FR ", "jean.dupont@example.fr"),
    (TokenKind.PHONE, "06 12 34 56 78", "+33612345678"),
    (TokenKind.PHONE, "+33 (0)6.12.34.56.78", "+33612345678"),
    (TokenKind.PHONE, "0033612345678", "+33612345678"),
    (TokenKind.URL_CODE, "ABCDEF234567", "abcdef234567"),
    (TokenKind.DNS_LABEL, "Dossier-K3Q9", "dossier-k3q9"),
    (TokenKind.PORTAL_LOGIN, "JDupont58", "jdupont58"),
    (TokenKind.NIR, "2 84 05 2a 004 123 45", "284052A00412345"),
    (TokenKind.NIR, "1.84.05.75.115.123.45", "184057511512345"),
    ("email", "A@B.FR", "a@b.fr"),
])
def test_normalise(kind, raw, expected):
    assert normalise(kind, raw) == expected


def test_normalise_unparseable_phone_is_kept():
    assert normalise(TokenKind.PHONE, " n/a ") == "n/a"


def test_tokens_of_lists_every_watched_point():
    identity = make_identity()
    tokens = tokens_of(identity)
    assert tokens == [
        Token(TokenKind.EMAIL, "helene.legoff58@courriel-sante.fr"),
        Token(TokenKind.PHONE, "+33612345678"),
        Token(TokenKind.URL_CODE, "abcdefghijklmnop"),
        Token(TokenKind.DNS_LABEL, "dossier-k3q9"),
        Token(TokenKind.PORTAL_LOGIN, "hlegoff58"),
        Token(TokenKind.NIR, "258042A004012XX"),
    ]
    assert all("Soleil" not in t.value for t in tokens)  # the password is not a token


def test_tokens_of_includes_second_phone():
    tokens = tokens_of(make_identity(phone2="+33299123456"))
    assert [t.value for t in tokens if t.kind is TokenKind.PHONE] == ["+33612345678", "+33299123456"]


def test_secret_stream_is_deterministic_and_uniform():
    from collections import Counter

    from canary.identity.sampling import SecretStream

    first, again, other = SecretStream(42), SecretStream(42), SecretStream(43)
    codes = [first.code80() for _ in range(2000)]
    assert codes == [again.code80() for _ in range(2000)]
    assert not set(codes) & {other.code80() for _ in range(2000)}
    assert all(len(c) == 16 and c.isalnum() and c == c.lower() for c in codes)
    counts = Counter("".join(codes))  # 32,000 characters over 32 symbols: ~1,000 each
    assert len(counts) == 32 and min(counts.values()) > 800 and max(counts.values()) < 1200


@pytest.mark.parametrize("name, plain, hyphen", [
    ("Le Goff", "legoff", "legoff"), ("N'Diaye", "ndiaye", "ndiaye"), ("Hélène", "helene", "helene"),
    ("Jean-Pierre", "jeanpierre", "jean-pierre"), ("Lœtitia", "loetitia", "loetitia"), ("Zoë", "zoe", "zoe"),
])
def test_slug(name, plain, hyphen):
    from canary.identity.accounts import slug

    assert slug(name) == plain and slug(name, keep_hyphen=True) == hyphen
