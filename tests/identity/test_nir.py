from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.fr import nir as stdnum_nir

from canary.identity import nir
from canary.model import Birthplace, Sex


def place(code: str, dept: str) -> Birthplace:
    return Birthplace(insee_code=code, name="x", departement=dept)


def test_known_key():
    # Worked example printed in many NIR references: 1 37 04 76 243 484 -> key 15.
    assert nir.nir_key("1370476243484") == "15"
    assert nir.is_valid("137047624348415")
    assert not nir.is_valid("137047624348416")


def test_corsica_keys_substitute_19_and_18():
    # stdnum's doctests: 253072B07300470 and 253072A07300443 are valid.
    assert nir.nir_key("253072B073004") == "70"
    assert nir.nir_key("253072A073004") == "43"
    assert nir.is_valid("253072B07300470")


def test_make_nir_layout():
    value = nir.make_nir(Sex.FEMALE, date(1984, 5, 3), place("75115", "75"), 123)
    assert value[:13] == "2840575115123"
    assert stdnum_nir.is_valid(value)
    assert nir.NIR_PATTERN.match(value)


def test_overseas_and_abroad_split_two_plus_three():
    dom = nir.make_nir(Sex.MALE, date(1990, 1, 9), place("97105", "971"), 7)
    assert dom[5:10] == "97105" and nir.NIR_PATTERN.match(dom)
    abroad = nir.make_nir(Sex.MALE, date(1990, 1, 9), place("99352", "99"), 999)
    assert abroad[5:10] == "99352" and abroad[10:13] == "999" and stdnum_nir.is_valid(abroad)


def test_corsica_before_1976_is_20():
    assert nir.historical_code("2A004", date(1975, 12, 31)) == ("20004", "20")
    assert nir.historical_code("2B033", date(1976, 1, 1)) == ("2B033", "2B")
    assert nir.historical_code("97411", date(1950, 1, 1)) == ("97411", "974")
    assert nir.historical_code("35238", date(1950, 1, 1)) == ("35238", "35")
    old = nir.make_nir(Sex.MALE, date(1960, 3, 1), place("20004", "20"), 1)
    assert old[5:7] == "20" and stdnum_nir.is_valid(old)


def test_order_number_bounds():
    with pytest.raises(ValueError):
        nir.make_nir(Sex.MALE, date(1960, 3, 1), place("35238", "35"), 0)
    with pytest.raises(ValueError):
        nir.make_nir(Sex.MALE, date(1960, 3, 1), place("35238", "35"), 1000)


def test_parts_and_spaced():
    value = nir.make_nir(Sex.FEMALE, date(1984, 5, 3), place("2A004", "2A"), 45)
    assert nir.parts(value)["departement"] == "2A"
    assert nir.spaced(value).split(" ")[:6] == ["2", "84", "05", "2A", "004", "045"]
    assert nir.is_valid(nir.spaced(value))


@given(
    sex=st.sampled_from(list(Sex)),
    birth=st.dates(min_value=date(1910, 1, 1), max_value=date(2030, 12, 31)),
    dept=st.sampled_from(["01", "35", "75", "2A", "2B", "99", "971", "976"]),
    commune=st.integers(min_value=1, max_value=990),
    order=st.integers(min_value=1, max_value=999),
)
def test_key_agrees_with_stdnum(sex, birth, dept, commune, order):
    if len(dept) == 3:
        code = dept + f"{commune % 90 + 1:02d}"
    else:
        code = dept + f"{commune:03d}"
    value = nir.make_nir(sex, birth, place(code, dept), order)
    assert stdnum_nir.is_valid(value)
    assert nir.is_valid(value)
    assert stdnum_nir.calc_check_digits(value) == value[13:]
