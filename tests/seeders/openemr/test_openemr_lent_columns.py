"""Which patient_data columns a canary fills follows one recent patient like it (issue #12), no database.

A site whose old patients have home lines and no e-mail and whose young ones have a mobile and an
e-mail, some women with their birth name recorded: the canary fills a column exactly when the patient
lent to it (same sex and age band) does, with its own identity's values, never the lender's own text.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, datetime

import sqlalchemy as sa

from canary.phones import formats
from seeders.openemr.rows import _birth_names, _own, _phones, drawn_from_site, site_donor
from seeders.sql.blend import habits_of
from support.sql_seeder_helpers import make_identity

NOW = datetime(2026, 3, 2, 10, 0)
COLUMNS = ("sex", "DOB", "regdate", "lname", "email", "phone_home", "phone_cell", "street_line_2", "birth_lname",
           "birth_fname", "occupation", "status")


def _row(n: int, age: int, *, birth_lname: str = "", occupation: str = "") -> dict:
    old = age >= 65
    return {"sex": "Female", "DOB": date(NOW.year - age, 5, 1), "regdate": NOW, "lname": f"NOM{n}",
            "email": "" if old else f"p{n}@exemple.fr", "phone_home": f"04 72 00 00 {n % 100:02d}" if old else "",
            "phone_cell": "" if old else f"06 00 00 00 {n % 100:02d}", "street_line_2": "Apt 3" if n % 4 == 0 else "",
            "birth_lname": birth_lname, "birth_fname": "Anne" if birth_lname else "", "occupation": occupation,
            "status": "married" if n % 2 else "single"}


def _site():
    rows = [_row(n, 75) for n in range(40)]
    rows += [_row(n, 40, birth_lname=f"AUTRE{n}" if n % 2 else "", occupation=f"Métier {n}" if n < 45 else "Cadre")
             for n in range(40, 80)]
    return habits_of("patient_data", rows, COLUMNS)


def _woman(i: int, age: int, **changes):
    ident = make_identity(2 * i + 1, **changes)
    return replace(ident, birth_date=date(NOW.year - age, 1, 15))


def test_the_old_get_no_email_and_keep_a_home_line_like_the_old_of_the_site():
    habits, rnd = _site(), random.Random(3)
    for i in range(60):
        ident = _woman(i, 80)
        donor = site_donor(habits, rnd, sex="Female", age=80, birth_name=ident.married_name_used)
        assert _own(donor, habits, "email", lambda: ident.email, ident.email) == ""
        written = _phones(ident, habits, donor, rnd, 80)
        if ident.phone2:  # a mobile and a landline: only the home line, as the site's old patients
            assert written == {"phone_home": formats(ident.phone2)["spaced"], "phone_cell": ""}
        else:  # only a mobile: still one phone, as every lender has one
            assert written == {"phone_home": "", "phone_cell": formats(ident.phone)["spaced"]}


def test_the_young_get_their_email_and_mobile_and_a_complement_as_often_as_the_site():
    habits, rnd = _site(), random.Random(4)
    complements = 0
    for i in range(400):
        ident = _woman(i, 35)
        donor = site_donor(habits, rnd, sex="Female", age=35, birth_name=ident.married_name_used)
        assert _own(donor, habits, "email", lambda: ident.email, ident.email) == ident.email
        mobile = formats(ident.phone)["spaced"]
        assert _phones(ident, habits, donor, rnd, 35) == {"phone_home": "", "phone_cell": mobile}
        line = _own(donor, habits, "street_line_2", lambda: ident.address.line2 or "Esc. B", ident.address.line2)
        assert line in ("", ident.address.line2 or "Esc. B")
        complements += line != ""
    assert 60 < complements < 140  # a quarter of the site's patients have a complement


def test_a_married_woman_gets_her_birth_name_and_others_none_when_the_site_records_only_those():
    habits, rnd = _site(), random.Random(5)
    for i in range(100):
        ident = _woman(i, 40)
        donor = site_donor(habits, rnd, sex="Female", age=40, birth_name=ident.married_name_used)
        names = _birth_names(ident, habits, donor, ident.first_name)
        if ident.married_name_used:
            assert names == {"birth_lname": ident.birth_name.upper(), "birth_fname": ident.first_name}
        else:
            assert names == {"birth_lname": "", "birth_fname": ""}


def test_a_lenders_own_text_is_never_copied_but_handed_back():
    habits = _site()
    table = sa.Table("patient_data", sa.MetaData(), *(sa.Column(c, sa.String(64)) for c in ("occupation", "status")))
    lender = next(r for r in habits.rows if r["occupation"].startswith("Métier"))
    drawn, own = drawn_from_site(habits, table, set(), lender)
    assert drawn == {"occupation": "", "status": lender["status"]} and own == {"occupation": lender["occupation"]}
    cadre = next(r for r in habits.rows if r["occupation"] == "Cadre")
    assert drawn_from_site(habits, table, set(), cadre) == ({"occupation": "Cadre", "status": cadre["status"]}, {})


def test_married_names_are_recorded_as_often_as_the_site_records_them():
    from canary.identity.names import married_name_share
    from seeders.openemr.rows import _records_birth_name

    # One woman of 40 in ten has her birth name recorded apart from her used name.
    rows = [_row(n, 40, birth_lname=f"AUTRE{n}" if n % 10 == 0 else "") for n in range(100)]
    habits, rnd = habits_of("patient_data", rows, COLUMNS), random.Random(6)
    married = [ident for i in range(400) if (ident := _woman(i, 40)).married_name_used]
    recorded = sum(_records_birth_name(i, habits, sex="Female", age=40, rnd=rnd) for i in married)
    # The generator gives married names more often than this site records them: the canaries keep the site's 10 %.
    assert abs(recorded / len(married) - 0.10 / married_name_share(40)) < 0.08
    single = next(ident for i in range(20) if not (ident := _woman(i, 40)).married_name_used)
    assert not _records_birth_name(single, habits, sex="Female", age=40, rnd=rnd)


def test_the_city_is_written_as_the_sites_patients_write_it():
    """A site writing La Poste's capitals without accents: a canary in Vénissieux lives in "VENISSIEUX"
    like its neighbours (an accented spelling no patient has would set it apart), and a commune no recent
    patient lives in loses its accents the same way; a site writing accents keeps them."""
    from seeders.openemr.rows import _city

    plain = habits_of("patient_data", [{"city": c} for c in ("LYON", "VENISSIEUX", "DECINES-CHARPIEU", "BRON")],
                      ("city",))
    assert _city(plain, "Vénissieux") == "VENISSIEUX"
    assert _city(plain, "Décines Charpieu") == "DECINES-CHARPIEU"
    assert _city(plain, "Saint-Étienne") == "SAINT-ETIENNE"
    accented = habits_of("patient_data", [{"city": c} for c in ("Lyon", "Vénissieux", "Bron")], ("city",))
    assert _city(accented, "Décines-Charpieu") == "Décines-Charpieu"
    assert _city(accented, "VENISSIEUX") == "Vénissieux"


def test_successive_canaries_are_saved_again_as_often_as_the_sites_records_not_by_luck():
    """Half the site's records saved again days to months later: thirty successive canaries on one
    source's sequence get 14-16 later saves (independent draws: 7-23), their delays spread over the
    site's; each point alone is uniform, as an independent draw."""
    from datetime import timedelta

    from seeders.openemr.rows import canary_spread, second_save

    rows = [{"regdate": NOW, "date": NOW + timedelta(days=n + 1) if n % 2 else NOW, "updated_by": 7}
            for n in range(200)]
    habits = habits_of("patient_data", rows, ("regdate", "date", "updated_by"))
    for start in ((0.0, 0.0), (0.37, 0.81), (0.93, 0.12)):
        drawn = [second_save(habits, random.Random(0), canary_spread(k, start)) for k in range(30)]
        saved = [d for d in drawn if d]
        assert 14 <= len(saved) <= 16
        days = sorted(d[0] / 86400 for d in saved)
        assert days[0] < 40 and days[-1] > 160 and 70 < days[len(days) // 2] < 130 and saved[0][1] == 7


def test_the_lending_patient_is_never_one_of_our_canaries_and_balances_their_shares():
    """``exclude`` (the source's live canaries, Seeder.set_own_rows) is never drawn, whatever the draw; with
    canaries already planted, the lender chosen among the candidates brings their shares toward the site's."""
    rows = [dict(_row(n, 40), pid=n, status="married" if n % 2 else "single") for n in range(40)]
    habits = habits_of("patient_data", rows, COLUMNS + ("pid",))
    ours = frozenset(range(0, 40, 2))  # the "single" half
    for seed in range(200):
        donor = site_donor(habits, random.Random(seed), sex="Female", age=40, birth_name=False, exclude=ours)
        assert donor is not None and donor["pid"] not in ours
    # Canaries so far all "married" where the site is half and half: the next lender is "single" when a
    # candidate is (ours excluded from nothing here).
    planted = [dict(rows[1], pid=1000 + k) for k in range(6)]
    picked = [site_donor(habits, random.Random(seed), sex="Female", age=40, birth_name=False, balance=planted)
              for seed in range(50)]
    assert sum(d["status"] == "single" for d in picked) >= 45
