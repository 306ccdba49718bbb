import random

import phonenumbers
import pytest

from canary import phones
from canary.contacts import ContactPoints, demo_contacts
from canary.errors import ConfigError, PoolExhausted
from canary.model import Token, TokenKind
from canary.identity.phonepool import PhoneAllocator


def test_demo_pool_is_six_fiction_blocks():
    pool = phones.demo_pool()
    assert len(pool) == 60_000 == len(set(pool))
    assert pool[0] == "+33199000000" and pool[-1] == "+33639989999"
    assert pool == phones.demo_pool()  # deterministic
    assert all(phones.is_demo_number(n) for n in pool)
    starts = {n[:8] for n in pool}
    assert starts == {"+3319900", "+3326191", "+3335301", "+3346571", "+3353649", "+3363998"}


@pytest.mark.parametrize("number", ["+33612345678", "+33199010000", "+33261900000", "+3319900123", "+441234567890"])
def test_not_demo(number):
    assert not phones.is_demo_number(number)


def test_classify():
    assert phones.classify("+33612345678") == "mobile"
    assert phones.classify("+33145678901") == "landline"
    assert phones.classify("+33912345678") == "voip"
    assert phones.classify("+33800123456") == "toll_free"
    assert phones.classify("+33162001234") == "telemarketing"
    assert phones.classify("+33639981234") == "mobile"  # fiction block unknown to phonenumbers
    assert phones.classify("+33199001234") == "landline"


@pytest.mark.parametrize("text", [
    "06 12 34 56 78", "06.12.34.56.78", "06-12-34-56-78", "0612345678", "+33 6 12 34 56 78",
    "+33612345678", "+33 (0)6 12 34 56 78", "0033 6 12 34 56 78", "0033 (0)6 12 34 56 78", " 06 12 34 56 78 ",
    "06/12/34/56/78", "+33 612 345 678",
])
def test_to_e164_common_writings(text):
    assert phones.to_e164(text) == "+33612345678"


def test_to_e164_fallback_and_garbage():
    assert phones.to_e164("tel: 06 12 34 56 78") == "+33612345678"  # through phonenumbers
    assert phones.to_e164("not a number") is None


def test_formats():
    f = phones.formats("+33612345678")
    assert f == {
        "e164": "+33612345678", "national": "0612345678", "spaced": "06 12 34 56 78",
        "dotted": "06.12.34.56.78", "dashed": "06-12-34-56-78", "international": "+33 6 12 34 56 78",
    }
    for writing in f.values():
        assert phones.to_e164(writing) == "+33612345678"
    with pytest.raises(ValueError):
        phones.formats("+441234567890")


def test_validate_pool_normalises_and_dedupes():
    pool = phones.validate_pool(["06 12 34 56 78", "+33612345678", "02 99 12 34 56", "09 51 23 45 67"])
    assert pool == ("+33612345678", "+33299123456", "+33951234567")


@pytest.mark.parametrize("entry, words", [
    ("hello", "not a phone number"),
    ("+44 20 7946 0000", "not a French"),
    ("01 99 00 12 34", "fiction"),
    ("06 39 98 00 01", "fiction"),
    ("01 62 12 34 56", "telemarketing"),
    ("09 48 12 34 56", "telemarketing"),
    ("0800 12 34 56", "toll-free"),
    ("07 10 00 00 00", "not a valid"),
])
def test_validate_pool_rejects_with_one_line(entry, words):
    with pytest.raises(ConfigError) as err:
        phones.validate_pool(["06 12 34 56 78", entry])
    message = str(err.value)
    assert words in message and entry in message and "\n" not in message


def test_validate_pool_accepts_fiction_in_demo():
    sample = phones.demo_pool()[::997]
    assert phones.validate_pool(sample, demo=True) == sample


def test_demo_pool_refused_for_production():
    with pytest.raises(ConfigError):
        demo_contacts().require_production()
    # Own domains, but fiction numbers: still refused.
    contacts = ContactPoints(("hopital-canari.fr",), "canari.example.org", "https://x.example.org/a/",
                             phone_pool=("+33612345678", "+33199001234"))
    with pytest.raises(ConfigError, match="demo/fiction"):
        contacts.require_production()


def test_landline_zone_and_kind():
    assert phones.landline_zone("+33299123456") == "02"
    assert phones.landline_zone("+33612345678") is None
    assert phones.kind("+33712345678") == "mobile"
    assert phones.kind("+33951234567") == "voip"
    assert phones.kind("+3361234567") == "other"


def test_allocator_unique_and_exhaustion():
    pool = ("+33612345601", "+33612345602", "+33299000001")
    alloc = PhoneAllocator(pool, random.Random(1), taken=["+33612345602"])
    first = alloc.primary("02", home_line_only=False)
    assert first == "+33612345601"  # the only free mobile
    assert alloc.primary("02", home_line_only=False) == "+33299000001"  # then the zone's landline
    with pytest.raises(PoolExhausted) as err:
        alloc.primary("02", home_line_only=False)
    assert str(err.value) == "phone pool exhausted: 3 numbers, all in use; add numbers to [contacts] phone_pool"


def test_allocator_respects_reserved_predicate():
    pool = ("+33612345601", "+33612345602")
    alloc = PhoneAllocator(pool, random.Random(1), reserved=lambda t: t == Token(TokenKind.PHONE, "+33612345601"))
    assert alloc.primary(None, home_line_only=False) == "+33612345602"
    with pytest.raises(PoolExhausted):
        alloc.primary(None, home_line_only=False)


def test_allocator_home_line_prefers_zone_then_voip_then_nothing():
    pool = ("+33612345601", "+33145000001", "+33951000001")
    alloc = PhoneAllocator(pool, random.Random(1))
    assert alloc.home_line("02") == "+33951000001"  # no 02 landline: a 09 box number
    assert alloc.home_line("02") is None  # nothing consistent left: no second number
    assert alloc.home_line("01") == "+33145000001"


def test_allocator_preview_draws_with_replacement():
    pool = ("+33612345601", "+33612345602")
    alloc = PhoneAllocator(pool, random.Random(1), unique=False)
    drawn = [alloc.primary("01", home_line_only=False) for _ in range(50)]
    assert set(drawn) == set(pool)


def test_phonenumbers_agrees_fiction_landlines_are_french():
    # The demo landline blocks are ordinary geographic numbers for phonenumbers.
    number = phonenumbers.parse("+33465710000")
    assert phonenumbers.region_code_for_number(number) == "FR"
