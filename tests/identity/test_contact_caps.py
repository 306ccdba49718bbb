"""Contact points that do not cluster: at most a few canaries per email domain and per number block."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import date

import pytest

from canary.audit.rules import Severity, cluster_findings
from canary.config import parse_config
from canary.contacts import ContactPoints
from canary.errors import ConfigError, PoolExhausted
from canary.identity.generator import IdentityGenerator
from canary.identity.phonepool import block_of
from canary.planting.planter import contact_points_in_use, plant
from support.plant_helpers import add_source, new_registry, production_config
from support.sql_seeder_helpers import MAPPING, create_schema, populate_real

TODAY = date(2026, 3, 2)
# Three blocks of mobiles (06 12 34, 07 65 43, 06 50 30), plenty of numbers in each.
POOL = tuple(f"+33{prefix}{n:04d}" for prefix in ("61234", "76543", "65030") for n in range(100, 140))
DOMAINS = ("mel-famille.fr", "boite-perso.fr", "courrier-maison.fr", "mes-mails.fr")


def capped(per_domain=2, per_block=2, pool=POOL) -> ContactPoints:
    return ContactPoints(email_domains=DOMAINS, dns_zone="mon-rdv-sante.fr", portal_url="https://x.mon-rdv-sante.fr/",
                         phone_pool=pool, max_per_email_domain=per_domain, max_per_phone_block=per_block)


def numbers(identity):
    return [n for n in (identity.phone, identity.phone2) if n]


def test_no_domain_and_no_block_gets_more_than_its_cap():
    generator = IdentityGenerator(capped(per_domain=2, per_block=4), seed=5, today=TODAY)
    people = list(generator.generate_many(8))
    domains = Counter(p.email.rpartition("@")[2] for p in people)
    assert domains == {d: 2 for d in DOMAINS}  # least used first: evenly spread
    blocks = Counter(block_of(n) for p in people for n in numbers(p))
    assert max(blocks.values()) <= 4
    with pytest.raises(PoolExhausted, match="every email domain already holds 2 canaries of this source"):
        generator.generate()


def test_the_block_cap_names_its_setting_when_the_pool_runs_out():
    generator = IdentityGenerator(capped(per_domain=None, per_block=1), seed=3, today=TODAY)
    people = [generator.generate() for _ in range(2)]
    assert len({block_of(n) for p in people for n in numbers(p)}) == sum(len(numbers(p)) for p in people)
    with pytest.raises(PoolExhausted, match="raise contacts.max_per_phone_block"):
        for _ in range(3):
            generator.generate()


def test_contact_points_already_used_by_the_source_count():
    in_use = ["a@mel-famille.fr", "b@mel-famille.fr", "+33612340100", "+33612340101"]
    generator = IdentityGenerator(capped(per_domain=2, per_block=2), seed=9, today=TODAY, in_use=in_use,
                                  taken_phones=in_use[2:])
    people = list(generator.generate_many(4))  # two blocks left with room for two each
    assert all(not p.email.endswith("@mel-famille.fr") for p in people)
    assert all(block_of(n) != "+3361234" for p in people for n in numbers(p))


def test_previews_ignore_the_caps():
    generator = IdentityGenerator(capped(per_domain=1, per_block=1), seed=1, today=TODAY, reserve_phones=False)
    assert len(list(generator.generate_many(30))) == 30


def test_the_configuration_sets_a_few_by_default_and_zero_lifts_the_cap():
    base = {"email_domains": list(DOMAINS), "dns_zone": "z.fr", "portal_url": "https://z.fr/",
            "phone_pool": list(POOL)}
    default = parse_config({"contacts": base}, path=None).contacts
    assert (default.max_per_email_domain, default.max_per_phone_block) == (3, 2)
    lifted = parse_config({"contacts": {**base, "max_per_email_domain": 0, "max_per_phone_block": 5}},
                          path=None).contacts
    assert (lifted.max_per_email_domain, lifted.max_per_phone_block) == (None, 5)
    with pytest.raises(ConfigError, match="contacts.max_per_phone_block must be a whole number >= 0"):
        parse_config({"contacts": {**base, "max_per_phone_block": -1}}, path=None)


def test_planting_counts_the_source_s_live_canaries_across_runs(tmp_path):
    url = f"sqlite:///{tmp_path / 'lis.db'}"
    create_schema(url)
    populate_real(url, 30)
    registry, _ = new_registry(tmp_path)
    config = production_config(registry_url="sqlite://", pool=POOL, domains=DOMAINS[:2])
    config = replace(config, contacts=replace(config.contacts, max_per_email_domain=2, max_per_phone_block=2))
    add_source(registry, "lis", "sql", url=url, mapping=str(MAPPING))
    plant(registry, config, "lis", 3, seed=1)
    in_use = contact_points_in_use(registry, "lis")
    assert len([v for v in in_use if "@" in v]) == 3
    plant(registry, config, "lis", 1, seed=2)
    with pytest.raises(PoolExhausted, match="every email domain already holds 2"):
        plant(registry, config, "lis", 1, seed=3)
    domains = Counter(v.rpartition("@")[2] for v in contact_points_in_use(registry, "lis") if "@" in v)
    assert domains == {"mel-famille.fr": 2, "boite-perso.fr": 2}
    registry.close()


def test_audit_recommends_how_many_domains_and_blocks_to_own():
    contacts = [(i, f"p{i}@mel-famille.fr") for i in range(1, 6)] + [(6, "q@boite-perso.fr")]
    contacts += [(i, f"+336123401{i:02d}") for i in range(1, 5)]
    findings = {f.check: f for f in cluster_findings(contacts, None, None)}
    domain = findings["email-domain-crowded"]
    assert domain.severity is Severity.WARNING and domain.canaries == (1, 2, 3, 4, 5)
    assert "own at least 2 email domains for these 6 canaries" in domain.fix
    block = findings["phone-block-crowded"]
    assert block.values == ("+3361234xxxx (4)",) and "max_per_phone_block at 2" in block.fix
    assert cluster_findings(contacts, 5, 4) == []


def test_older_canaries_get_landlines_of_their_zone_when_the_pool_has_them():
    from canary.phones import kind

    pool = tuple(f"+336{b:02d}{n:02d}{t:04d}" for b in range(10, 40) for n in range(10, 20) for t in (1234, 5678)) \
        + tuple(f"+33299{n:02d}{t:04d}" for n in range(10, 99) for t in (1111, 2222))
    contacts = replace(capped(per_domain=None, per_block=2, pool=pool), email_domains=DOMAINS)
    generator = IdentityGenerator(contacts, seed=12, today=TODAY, site_postcodes={"35000": 10, "35200": 5})
    people = list(generator.generate_many(300))
    assert {p.address.postcode for p in people} == {"35000", "35200"}

    def landline_share(ages):
        group = [p for p in people if (TODAY - p.birth_date).days // 365 in ages]
        return sum(any(kind(n) == "landline" for n in numbers(p)) for p in group) / len(group)

    assert landline_share(range(70, 120)) > 0.3 > landline_share(range(0, 45))
    landlines = [n for p in people for n in numbers(p) if kind(n) == "landline"]
    assert landlines and all(n.startswith("+332") for n in landlines)  # the zone of Rennes
