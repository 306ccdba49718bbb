"""The identity generator, checked on 10,000 identities drawn from the real
shipped reference data: validity, consistency between fields, uniqueness,
determinism and distributions."""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from datetime import date

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.fr import nir as stdnum_nir

from canary.identity import medical

from canary.identity import refdata
from canary.identity.ages import DEFAULT_AGE_PROFILE, age_on, parse_band
from canary.contacts import ContactPoints, demo_contacts
from canary.errors import ConfigError, PoolExhausted
from canary.identity.generator import IdentityGenerator
from canary.model import Sex, Token, TokenKind
from canary.identity.names import female_share, married_name_share
from canary.identity.nir import NIR_PATTERN
from canary.phones import is_demo_number, is_telemarketing_number, landline_zone
from canary.identity.places import abroad_share
from canary.tokens import normalise, tokens_of

TODAY = date(2025, 6, 15)
COUNT = 10_000


def production_pool() -> tuple[str, ...]:
    """Ordinary-looking numbers (never called: tests only) across every kind and zone."""
    mobiles = [f"+3361234{n:04d}" for n in range(6_000)] + [f"+3376543{n:04d}" for n in range(4_000)]
    landlines = [f"+33{zone}{block}{n:04d}"
                 for zone, block in (("1", "4567"), ("2", "9912"), ("3", "2045"), ("4", "7812"), ("5", "5643"))
                 for n in range(2_000)]
    box = [f"+3395123{n:04d}" for n in range(2_000)]
    return tuple(mobiles + landlines + box)


def contacts(pool=None) -> ContactPoints:
    return ContactPoints(
        email_domains=("hopital-canari.fr", "mail-patients.fr"),
        dns_zone="dossiers.hopital-canari.fr",
        portal_url="https://portail.hopital-canari.fr/acces",
        phone_pool=production_pool() if pool is None else pool,
    )


@pytest.fixture(scope="module")
def identities():
    generator = IdentityGenerator(contacts(), seed=20250615, today=TODAY)
    return list(generator.generate_many(COUNT))


# -- NIR and birthplace ----------------------------------------------------------


def test_nir_valid_and_consistent(identities):
    for person in identities:
        nir = person.nir
        assert stdnum_nir.is_valid(nir), nir
        assert NIR_PATTERN.match(nir), nir
        assert nir[0] == ("1" if person.sex is Sex.MALE else "2")
        assert nir[1:3] == f"{person.birth_date.year % 100:02d}"
        assert nir[3:5] == f"{person.birth_date.month:02d}"
        assert nir[5:10] == person.birthplace.insee_code
        assert 1 <= int(nir[10:13]) <= 999


def test_birthplace_coded_as_on_birth_date(identities):
    corsica_old = corsica_new = 0
    for person in identities:
        place, birth = person.birthplace, person.birth_date
        if place.abroad:
            assert place.insee_code[:2] == "99" and place.country == place.name
            assert place.insee_code in {c.insee_code for c in refdata.countries().items}
            if place.insee_code == "99352":
                assert birth >= date(1963, 1, 1)  # Algeria before 1962: old codes 91-94
            continue
        assert place.country == "France"
        if place.departement == "20":
            corsica_old += 1
            assert birth < date(1976, 1, 1)
            current = [refdata.commune(p + place.insee_code[2:]) for p in ("2A", "2B")]
            assert any(current) and place.name in {c.name for c in current if c}
            continue
        commune = refdata.commune(place.insee_code)
        assert commune is not None and commune.name == place.name
        assert place.departement == commune.departement
        if place.departement in ("2A", "2B"):
            corsica_new += 1
            assert birth >= date(1976, 1, 1)
        if place.departement in ("78", "91", "92", "93", "94", "95"):
            assert birth >= date(1968, 1, 1)
        if place.departement == "976":
            assert birth >= date(2011, 4, 1)
    assert corsica_old + corsica_new > 0  # both codings are exercised below too


def test_corsica_uses_20_before_1976():
    generator = IdentityGenerator(contacts(), seed=7, today=TODAY, catchment=("2A", "2B"),
                                  age_profile={"30-44": 1, "55-90": 1})
    depts = Counter()
    for person in generator.generate_many(600):
        if person.birthplace.departement in ("20", "2A", "2B"):
            depts[person.birthplace.departement] += 1
            assert person.nir[5:7] == person.birthplace.departement
            assert (person.birthplace.departement == "20") == (person.birth_date < date(1976, 1, 1))
            assert stdnum_nir.is_valid(person.nir)
    assert depts["20"] > 10 and depts["2A"] + depts["2B"] > 10


def test_paris_arrondissements(identities):
    born = [p for p in identities if p.birthplace.insee_code[:3] == "751"]
    assert born and all(101 <= int(p.birthplace.insee_code[2:]) <= 120 for p in born)
    living = [p for p in identities if p.address.insee_code[:3] == "751"]
    assert living and all(p.address.city == "Paris" for p in living)


# -- address, phones, names --------------------------------------------------------


def test_address_is_a_real_postcode_commune_pair(identities):
    for person in identities:
        a = person.address
        assert refdata.is_valid_postcode_commune(a.postcode, a.insee_code), a
        assert refdata.commune(a.insee_code).departement == a.departement
        assert a.line1 and a.country == "France"
        assert len(a.departement) == 2  # metropolitan by default


def test_house_numbers_mostly_small(identities):
    numbers = [int(m.group()) for p in identities if (m := re.match(r"\d+", p.address.line1))]
    assert len(numbers) > 0.9 * COUNT
    assert sum(n <= 60 for n in numbers) / len(numbers) > 0.75
    assert any(" bis " in p.address.line1 for p in identities)


def test_phones_valid_french_not_fiction_and_zone_consistent(identities):
    second = 0
    for person in identities:
        for number in filter(None, (person.phone, person.phone2)):
            parsed = phonenumbers.parse(number)
            assert phonenumbers.is_valid_number(parsed) and phonenumbers.region_code_for_number(parsed) == "FR"
            assert not is_demo_number(number) and not is_telemarketing_number(number)
        zone = refdata.landline_zone(person.address.departement)
        for number in (person.phone, person.phone2):
            if number and landline_zone(number):
                assert landline_zone(number) == zone, (number, person.address)
        if person.phone2:
            second += 1
            assert person.phone2 != person.phone
    assert 0.1 < second / COUNT < 0.5


def test_older_patients_more_often_have_a_landline(identities):
    def share(lo, hi):
        group = [p for p in identities if lo <= age_on(p.birth_date, TODAY) <= hi]
        return sum(1 for p in group if landline_zone(p.phone) or p.phone2) / len(group)

    assert share(75, 120) > share(18, 40) + 0.15


@functools.cache
def names_given(sex: str, decade: int) -> frozenset[str]:
    return frozenset(refdata.first_names(sex, decade).items)


def test_first_names_match_sex_and_decade(identities):
    for person in identities:
        sex, decade = person.sex.value, person.birth_date.year // 10 * 10
        assert person.first_names[0] in names_given(sex, decade)
        assert all(name in names_given(sex, decade) or name in names_given(sex, decade - 30)
                   for name in person.first_names[1:])
        assert 1 <= len(person.first_names) <= 3 and len(set(person.first_names)) == len(person.first_names)
        assert person.civility == ("M." if person.sex is Sex.MALE else "Mme")
    multi = sum(len(p.first_names) > 1 for p in identities) / COUNT
    assert 0.65 < multi < 0.85


def test_married_names(identities):
    for person in identities:
        if person.sex is Sex.MALE or age_on(person.birth_date, TODAY) < 18:
            assert person.last_name == person.birth_name
    women = [p for p in identities if p.sex is Sex.FEMALE]
    expected = sum(married_name_share(age_on(p.birth_date, TODAY)) for p in women)
    observed = sum(p.married_name_used for p in women)
    assert abs(observed - expected) < 4 * math.sqrt(expected)
    compound = sum("-" in p.birth_name or " " in p.birth_name for p in identities) / COUNT
    assert 0.005 < compound < 0.08


# -- online contact points -----------------------------------------------------------


def test_all_tokens_unique_and_already_normalised(identities):
    seen = Counter()
    for person in identities:
        for token in tokens_of(person):
            seen[token] += 1
        assert person.email == normalise(TokenKind.EMAIL, person.email)
        assert person.portal_login == normalise(TokenKind.PORTAL_LOGIN, person.portal_login)
        assert person.nir == normalise(TokenKind.NIR, person.nir)
    duplicates = [t for t, n in seen.items() if n > 1]
    assert duplicates == []
    passwords = Counter(p.portal_password for p in identities)
    assert passwords.most_common(1)[0][1] == 1


def test_online_contact_points_look_right(identities):
    c = contacts()
    email = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*@(hopital-canari\.fr|mail-patients\.fr)$")
    label = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
    for person in identities:
        assert email.match(person.email), person.email
        assert re.fullmatch(r"[a-z2-7]{16}", person.url_code)  # 80 bits
        assert person.portal_url == c.portal_url + "/" + person.url_code
        assert label.match(person.dns_label) and len(person.dns_label) <= 63
        assert re.search(r"[a-z2-7]{16}$", person.dns_label)
        assert person.hostname == f"{person.dns_label}.{c.dns_zone}"
        assert person.portal_login and person.portal_login == person.portal_login.lower()
        assert len(person.portal_password) >= 8


def test_rpps_and_medical_content(identities):
    for person in identities:
        gp = person.gp
        assert gp.civility == "Dr" and re.fullmatch(r"10\d{9}", gp.rpps) and luhn.is_valid(gp.rpps)
        assert person.blood_group in medical.BLOOD_GROUPS
        assert len(set(person.allergies)) == len(person.allergies)
        age = age_on(person.birth_date, TODAY)
        for treatment in person.treatments:
            if "lévonorgestrel" in treatment or "désogestrel" in treatment:
                assert person.sex is Sex.FEMALE and 15 <= age <= 52
            if "tamsulosine" in treatment or "finastéride" in treatment:
                assert person.sex is Sex.MALE
    no_allergy = sum(not p.allergies for p in identities) / COUNT
    assert 0.65 < no_allergy < 0.8
    gps = {p.gp.rpps for p in identities}
    assert len(gps) < COUNT / 10  # patients share their GPs


def test_treatment_count_grows_with_age(identities):
    bands = [(0, 17), (18, 44), (45, 64), (65, 79), (80, 120)]
    means = []
    for lo, hi in bands:
        group = [p for p in identities if lo <= age_on(p.birth_date, TODAY) <= hi]
        means.append(sum(len(p.treatments) for p in group) / len(group))
    assert means == sorted(means) and means[-1] > 3 and means[0] < 0.5


# -- distributions --------------------------------------------------------------------


def chi_square(observed: dict, expected: dict) -> float:
    return sum((observed.get(k, 0) - e) ** 2 / e for k, e in expected.items())


def test_blood_groups_follow_efs_frequencies(identities):
    observed = Counter(p.blood_group for p in identities)
    total = sum(medical.BLOOD_GROUPS.values())
    expected = {g: COUNT * w / total for g, w in medical.BLOOD_GROUPS.items()}
    # 7 degrees of freedom: P(chi2 > 24.32) = 0.001.
    assert chi_square(observed, expected) < 24.32


def test_age_profile_bands(identities):
    observed = Counter()
    for person in identities:
        age = age_on(person.birth_date, TODAY)
        band = next(b for b in DEFAULT_AGE_PROFILE if parse_band(b)[0] <= age <= parse_band(b)[1])
        observed[band] += 1
    total = sum(DEFAULT_AGE_PROFILE.values())
    expected = {b: COUNT * w / total for b, w in DEFAULT_AGE_PROFILE.items()}
    # 4 degrees of freedom: P(chi2 > 18.47) = 0.001.
    assert chi_square(observed, expected) < 18.47


def test_sex_ratio(identities):
    expected = sum(female_share(age_on(p.birth_date, TODAY)) for p in identities)
    observed = sum(p.sex is Sex.FEMALE for p in identities)
    assert abs(observed - expected) < 4 * math.sqrt(COUNT * 0.25)
    assert 0.5 < observed / COUNT < 0.6


def test_born_abroad_share(identities):
    expected = sum(abroad_share(age_on(p.birth_date, TODAY)) for p in identities)
    observed = sum(p.birthplace.abroad for p in identities)
    assert abs(observed - expected) < 4 * math.sqrt(expected)
    assert 0.09 < observed / COUNT < 0.14


def test_custom_age_profile_and_catchment():
    generator = IdentityGenerator(contacts(), seed=3, today=TODAY, age_profile={"0-17": 1, "90+": 0},
                                  catchment=("35", "22"))
    for person in generator.generate_many(300):
        assert age_on(person.birth_date, TODAY) <= 17
        assert person.address.departement in ("35", "22")


@pytest.mark.parametrize("profile", [{"18-": 1}, {"40-20": 1}, {"0-17": -1}, {"0-50": 1, "40-60": 1}, {"0-9": 0}])
def test_bad_age_profile_is_a_config_error(profile):
    with pytest.raises(ConfigError):
        IdentityGenerator(contacts(), seed=1, today=TODAY, age_profile=profile)


# -- determinism, reservations, pool ----------------------------------------------------


def test_same_seed_same_identities():
    first = [p.to_dict() for p in IdentityGenerator(contacts(), seed=99, today=TODAY).generate_many(300)]
    again = [p.to_dict() for p in IdentityGenerator(contacts(), seed=99, today=TODAY).generate_many(300)]
    other = [p.to_dict() for p in IdentityGenerator(contacts(), seed=100, today=TODAY).generate_many(300)]
    assert first == again
    assert first != other


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**64))
def test_any_seed_gives_valid_identities(seed):
    generator = IdentityGenerator(contacts(production_pool()[::7]), seed=seed, today=TODAY)
    for person in generator.generate_many(30):
        assert stdnum_nir.is_valid(person.nir)
        assert refdata.is_valid_postcode_commune(person.address.postcode, person.address.insee_code)


def test_reserved_tokens_are_never_reissued():
    first = list(IdentityGenerator(contacts(), seed=5, today=TODAY).generate_many(300))
    used = {t for p in first for t in tokens_of(p)}
    calls = []

    def reserved(token: Token) -> bool:
        calls.append(token)
        return token in used

    again = list(IdentityGenerator(contacts(), seed=5, today=TODAY, reserved=reserved,
                                   taken_phones=[t.value for t in used if t.kind is TokenKind.PHONE])
                 .generate_many(300))
    assert calls and not {t for p in again for t in tokens_of(p)} & used


def test_random_seed_is_exposed():
    generator = IdentityGenerator(contacts(), today=TODAY)
    assert isinstance(generator.seed, int) and generator.seed.bit_length() > 64
    replay = IdentityGenerator(contacts(), seed=generator.seed, today=TODAY)
    assert generator.generate() == replay.generate()


def test_pool_exhaustion():
    pool = ("+33612345601", "+33612345602", "+33299000001")
    generator = IdentityGenerator(contacts(pool), seed=1, today=TODAY, taken_phones=["+33612345602"])
    with pytest.raises(PoolExhausted) as err:
        list(generator.generate_many(10))
    assert str(err.value) == "phone pool exhausted: 3 numbers, all in use; add numbers to [contacts] phone_pool"


def test_preview_draws_phones_with_replacement():
    pool = ("+33612345601", "+33612345602")
    generator = IdentityGenerator(contacts(pool), seed=1, today=TODAY, reserve_phones=False)
    people = list(generator.generate_many(100))
    assert {p.phone for p in people} <= set(pool)


def test_demo_contacts_generate_but_cannot_plant():
    demo = demo_contacts()
    generator = IdentityGenerator(demo, seed=1, today=TODAY, reserve_phones=False)
    person = generator.generate()
    assert is_demo_number(person.phone) and person.email.split("@")[1] in demo.email_domains
    with pytest.raises(ConfigError):
        demo.require_production()


def test_empty_contacts_are_config_errors():
    with pytest.raises(ConfigError):
        IdentityGenerator(contacts(()), seed=1)
    with pytest.raises(ConfigError):
        IdentityGenerator(ContactPoints((), "z.fr", "https://z.fr/", ("+33612345601",)), seed=1)
