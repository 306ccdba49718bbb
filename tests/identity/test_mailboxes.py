"""Watched mailboxes at common providers: the pool file, who gets which mailbox, the fallback to our domains."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import date

import pytest

from canary.config import load_config, parse_config
from canary.contacts import Mailbox, read_mailbox_file
from canary.errors import ConfigError
from canary.identity.generator import IdentityGenerator
from canary.identity.mailboxes import name_fit, sex_of_first_name
from canary.model import CanaryStatus, Sex, TokenKind
from canary.planting.planter import plant
from canary.planting.upkeep import retire
from canary.tokens import tokens_of
from support.plant_helpers import add_source, new_registry, production_config
from support.sql_seeder_helpers import MAPPING, create_schema, populate_real

TODAY = date(2026, 3, 2)
DOMAINS = ("mel-famille.fr", "boite-perso.fr")
POOL_TEXT = """\
# address                   sex  first name    last name
marie.lefort74@gmail.com         Marie         Lefort
D.Caron51@Orange.fr         M    Dominique     Caron     # both sexes wear Dominique: M given
jp.legoff@free.fr                jean-pierre   LE GOFF   # capitalised as the name data writes names
lapinbleu56@laposte.net

"""
POOL = (Mailbox("marie.lefort74@gmail.com", "Marie", "Lefort"), Mailbox("d.caron51@orange.fr", "Dominique", "Caron", "M"),
        Mailbox("jp.legoff@free.fr", "Jean-Pierre", "Le Goff"), Mailbox("lapinbleu56@laposte.net"))


def contacts(pool=POOL):
    return replace(production_config("sqlite://", domains=DOMAINS).contacts, mailbox_pool=tuple(pool))


def write_config(tmp_path, pool_text, name="mailboxes.txt"):
    (tmp_path / name).write_text(pool_text, encoding="utf-8")
    (tmp_path / "canary.toml").write_text(f"""
[contacts]
email_domains = ["mel-famille.fr"]
dns_zone = "mon-rdv-sante.fr"
portal_url = "https://espace.mon-rdv-sante.fr/acces/"
phone_pool = ["+33612345678"]
mailbox_pool_file = "{name}"

[listener]
smtp_relay = "courrier@mel-famille.fr"
""", encoding="utf-8")
    return tmp_path / "canary.toml"


# -- the pool file -------------------------------------------------------------------------


def test_the_pool_file_is_read_relative_to_the_configuration(tmp_path):
    config = load_config(write_config(tmp_path, POOL_TEXT))
    assert config.contacts.mailbox_pool == POOL


@pytest.mark.parametrize("line, message", [
    ("marie.lefort74", r"mailboxes.txt:2: 'marie.lefort74' is not an email address"),
    ("marie..lefort@gmail.com Marie Lefort", "is not an email address"),
    ("m.lefort@gmail.com Marie", "give the holder's first and last name, or none"),
    ("m.lefort@gmail.com F", "a sex without the holder's names"),
    ("m.lefort@gmail.com Marie L3fort", "'L3fort' is not a name"),
    ("m.lefort@mel-famille.fr Marie Lefort", "is at one of contacts.email_domains"),
    ("marie.lefort74@gmail.com Marie Lefort", r"mailboxes.txt:2: marie.lefort74@gmail.com is listed twice"),
])
def test_a_malformed_line_is_one_error_naming_it(tmp_path, line, message):
    path = write_config(tmp_path, f"marie.lefort74@gmail.com Marie Lefort\n{line}\n")
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)
    assert "\n" not in str(error.value)


def test_a_pool_without_a_relay_is_refused(tmp_path):
    path = write_config(tmp_path, POOL_TEXT)
    path.write_text(path.read_text().split("[listener]")[0], encoding="utf-8")
    with pytest.raises(ConfigError, match="contacts.mailbox_pool_file is set but listener.smtp_relay is not"):
        load_config(path)


def test_a_missing_or_unreadable_pool_file_is_a_config_error(tmp_path):
    path = write_config(tmp_path, "")
    (tmp_path / "mailboxes.txt").unlink()
    with pytest.raises(ConfigError, match="contacts.mailbox_pool_file: no file at .*mailboxes.txt"):
        load_config(path)
    (tmp_path / "mailboxes.txt").write_bytes(b"\xff\xfe m@gmail.com\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)
    base = {"email_domains": ["z.fr"], "dns_zone": "z.fr", "portal_url": "https://z.fr/", "phone_pool": ["+33612345678"]}
    with pytest.raises(ConfigError, match="contacts.mailbox_pool_file must be a file path"):
        parse_config({"contacts": {**base, "mailbox_pool_file": 3}}, path=None)


def test_the_cli_refuses_a_bad_pool_file_with_one_line_and_plants_nothing(tmp_path):
    from click.testing import CliRunner

    from canary.cli.main import cli

    path = write_config(tmp_path, "not-an-address Marie Lefort\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "plant", "lis", "--count", "1"])
    assert result.exit_code != 0
    assert "mailboxes.txt:1: 'not-an-address' is not an email address" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "canary-registry.db").exists()


# -- the holder's sex and age ------------------------------------------------------------


def test_the_sex_comes_from_the_first_name_data_or_the_line():
    assert [sex_of_first_name(n) for n in ("Marie", "JEAN", "Zoé", "zoe", "Jean-Pierre", "Camille", "Dominique",
                                          "Xqzt")] == ["F", "M", "F", "F", "M", None, None, None]
    with pytest.raises(ConfigError, match="the sex of 'Camille' .* write F or M after the address"):
        IdentityGenerator(contacts([Mailbox("c.roux@gmail.com", "Camille", "Roux")]), seed=1, today=TODAY)


def test_the_holder_is_born_when_the_first_name_was_given():
    assert name_fit("Kevin", "M", 1940) < 0.05 < 0.9 < name_fit("Kevin", "M", 1990)
    pool = [Mailbox(f"k.simon{n}@gmail.com", "Kevin", "Simon") for n in range(40)]
    people = list(IdentityGenerator(contacts(pool), seed=4, today=TODAY).generate_many(40))
    years = [p.birth_date.year for p in people]
    assert all(p.sex is Sex.MALE and TODAY.year - y >= 18 for p, y in zip(people, years))
    # Kevin: never given before the 1950s, most often in the 1980s-1990s (the age profile weighs the old more)
    assert min(years) >= 1950 and sum(1980 <= y < 2000 for y in years) >= 24
    plain = [p.birth_date.year for p in IdentityGenerator(contacts(()), seed=4, today=TODAY).generate_many(40)]
    assert sum(1980 <= y < 2000 for y in plain) < 16


# -- identities take the pool's mailboxes ------------------------------------------------


def test_identities_take_pool_mailboxes_first_then_our_domains():
    generator = IdentityGenerator(contacts(), seed=8, today=TODAY)
    people = list(generator.generate_many(7))
    emails = [p.email for p in people]
    assert sorted(emails[:4]) == sorted(m.address for m in POOL)
    assert all(e.rpartition("@")[2] in DOMAINS for e in emails[4:])
    by_email = {p.email: p for p in people}
    marie = by_email["marie.lefort74@gmail.com"]
    assert (marie.sex, marie.first_names[0], marie.last_name) == (Sex.FEMALE, "Marie", "Lefort")
    caron = by_email["d.caron51@orange.fr"]
    assert (caron.sex, caron.first_names[0], caron.last_name, caron.birth_name) == (Sex.MALE, "Dominique", "Caron",
                                                                                    "Caron")
    jp = by_email["jp.legoff@free.fr"]
    assert jp.first_names[0] == "Jean-Pierre" and "Pierre" not in jp.first_names[1:]
    assert jp.last_name == "Le Goff" and jp.civility == "M."
    # The email token the registry records and the listener looks up is the mailbox address.
    assert ("jp.legoff@free.fr" in {t.value for t in tokens_of(jp) if t.kind is TokenKind.EMAIL})


def test_a_pool_mailbox_goes_to_one_identity_and_none_already_in_the_registry():
    taken = {"marie.lefort74@gmail.com"}
    generator = IdentityGenerator(contacts(), seed=8, today=TODAY,
                                  reserved=lambda token: token.kind is TokenKind.EMAIL and token.value in taken)
    emails = [p.email for p in generator.generate_many(20)]
    assert len(set(emails)) == 20
    assert "marie.lefort74@gmail.com" not in emails
    assert Counter(e.rpartition("@")[2] for e in emails[:3]) == {"orange.fr": 1, "free.fr": 1, "laposte.net": 1}


def test_without_a_pool_the_draws_are_unchanged():
    plain = [p.email for p in IdentityGenerator(contacts(()), seed=8, today=TODAY).generate_many(5)]
    again = [p.email for p in IdentityGenerator(contacts(()), seed=8, today=TODAY).generate_many(5)]
    assert plain == again and all(e.rpartition("@")[2] in DOMAINS for e in plain)


def test_planting_gives_each_mailbox_to_one_live_canary_and_never_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'lis.db'}"
    create_schema(url)
    populate_real(url, 30)
    registry, config = new_registry(tmp_path)
    config = replace(config, contacts=replace(config.contacts, mailbox_pool=POOL[:2]))
    add_source(registry, "lis", "sql", url=url, mapping=str(MAPPING))
    add_source(registry, "lis2", "sql", url=url, mapping=str(MAPPING))
    first = plant(registry, config, "lis", 1, seed=1)
    second = plant(registry, config, "lis2", 2, seed=1)  # same seed, other source: the other mailbox, then a domain
    emails = [registry.get_canary(i).identity.email for i in first.canary_ids + second.canary_ids]
    assert sorted(emails[:2]) == sorted(m.address for m in POOL[:2])
    assert emails[2].rpartition("@")[2] in ("mel-famille.fr", "boite-perso.fr")
    owner = registry.find_token(emails[0], TokenKind.EMAIL)
    assert owner is not None and owner.id == first.canary_ids[0]
    # Retired, its mailbox is not handed out again: an old leak must still name the right source.
    retire(registry, [registry.get_canary(first.canary_ids[0])])
    assert registry.get_canary(first.canary_ids[0]).status is CanaryStatus.RETIRED
    third = plant(registry, config, "lis", 1, seed=5)
    assert registry.get_canary(third.canary_ids[0]).identity.email not in emails[:2]
    registry.close()


def test_the_audit_does_not_call_a_provider_domain_crowded(tmp_path):
    from canary.audit.report import audit_source
    from canary.audit.rules import cluster_findings, email_findings

    url = f"sqlite:///{tmp_path / 'lis.db'}"
    create_schema(url)
    populate_real(url, 30)
    registry, config = new_registry(tmp_path)
    pool = tuple(Mailbox(f"{first.lower()}.{last.lower()}{n}@gmail.com", first, last)
                 for n, (first, last) in enumerate([("Marie", "Lefort"), ("Jean", "Moreau"), ("Anne", "Roux"),
                                                    ("Louis", "Petit"), ("Julie", "Blanc")]))
    config = replace(config, contacts=replace(config.contacts, mailbox_pool=pool))
    add_source(registry, "lis", "sql", url=url, mapping=str(MAPPING))
    ids = plant(registry, config, "lis", 5, seed=2).canary_ids
    emails = [(i, registry.get_canary(i).identity.email) for i in ids]
    assert {e for _, e in emails} == {m.address for m in pool}
    # Counted as owned domains, five canaries at gmail.com would be "crowded"...
    assert [f.check for f in cluster_findings(emails, 3, 2)] == ["email-domain-crowded"]
    # ...but gmail.com is every patient's: the audit leaves pool mailboxes out of the domain counts.
    checks = {f.check for f in audit_source(registry, config, "lis", compare_target=False).findings}
    assert not checks & {"email-domain-crowded", "email-one-domain"}
    # a disposable or test-looking provider is still an error, in the pool file too
    assert [f.check for f in email_findings([(1, "x@yopmail.com")], common={"x@yopmail.com"})] == ["email-disposable"]
    from canary.audit.report import audit_config

    bad = replace(config, contacts=replace(config.contacts, mailbox_pool=pool + (Mailbox("x@yopmail.com"),)))
    assert [f.check for f in audit_config(bad).findings if f.check.startswith("email")] == ["email-disposable"]
    assert not [f for f in audit_config(config).findings if f.check.startswith("email")]
    registry.close()
