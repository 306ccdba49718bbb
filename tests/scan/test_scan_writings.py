"""Writings a real leak uses, each with a canary and a decoy that must not match (docs/scan.md)."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from canary.registry import Registry
from canary.scan.service import scan
from support import leakgen

T0 = datetime(2024, 1, 10, 9, 0, tzinfo=timezone.utc)
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")
ABBREVIATED = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc.")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("registry") / "registry.db"
    with Registry.open(f"sqlite:///{path}", create=True) as registry:
        w = leakgen.World(registry, seed=29)
        w.source("lis")
        w.plant("lis", 3, T0, "lis-a")
        yield w


@pytest.fixture(scope="module")
def canary(world):
    return world.identity(world.by_source["lis"][0])


def found(world, tmp_path, text: str, name: str = "leak.txt", forms: dict | None = None) -> dict[str, list[str]]:
    """{kind: [matched texts]} of the confirmed matches of the planted canaries in ``text``
    (and their writings by kind in ``forms``, when given)."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    report = scan(world.registry, [path], jobs=1, use_cache=False)
    out: dict[str, list[str]] = {}
    for finding in report.sources:
        for match in finding.matches:
            out.setdefault(match.kind, []).append(match.text)
            if forms is not None:
                forms.setdefault(match.kind, set()).add(match.form)
    return out


# -- email -------------------------------------------------------------------------------


def obfuscated(email: str) -> list[str]:
    local, domain = email.split("@")
    name, _, tld = domain.rpartition(".")
    return [f"{local} [at] {domain}", f"{local}(at){domain}", f"{local} @ {name} . {tld}",
            f"{local}%40{domain}", f"{local}&#64;{domain}", f"{local} [at] {name} [dot] {tld}",
            f"{local} at {name} dot {tld}", f"{local}[@]{domain}"]


def test_an_email_ending_a_sentence_is_matched(world, canary, tmp_path):
    got = found(world, tmp_path, f"Contact du patient : {canary.email}. Merci.\n")
    assert got.get("email") == [canary.email]


@pytest.mark.parametrize("index", range(8))
def test_obfuscated_email_addresses_are_matched(world, canary, tmp_path, index):
    writing = obfuscated(canary.email)[index]
    got = found(world, tmp_path, f"ecrire a {writing} pour le dossier\n")
    assert got.get("email") == [writing]


def test_an_obfuscated_address_with_another_local_part_is_not(world, canary, tmp_path):
    local, domain = canary.email.split("@")
    assert found(world, tmp_path, f"ecrire a x{local} [at] {domain} ou {local} [at] x{domain}\n") == {}


def test_an_obfuscated_address_is_found_from_its_domain_label_for_the_right_canary():
    """The matcher looks for the domain's longest label (one literal for every canary of the
    domain) and reads the local part and the writing around it."""
    from canary.scan import patterns, verify

    assert patterns.email_anchor("mail.chu-rennes.fr") == "chu-rennes"
    assert patterns.email_anchor("mel-famille.fr") == "mel-famille"
    domains = {b"mail.chu-rennes.fr": {b"jdupont": [0], b"amartin": [1]}}
    text = b"ecrire a J.Dupont@x.fr ou jdupont [at] mail [dot] CHU-Rennes (dot) fr, amartin@mail.chu-rennes.fr"
    at = text.index(b"CHU-Rennes")
    got = verify._obfuscated(text, at, at + len(b"chu-rennes"), domains)
    assert [(f.canary, f.text) for f in got] == [(0, "jdupont [at] mail [dot] CHU-Rennes (dot) fr")]
    plain = text.rindex(b"chu-rennes")  # the plain address is the email literal's
    assert verify._obfuscated(text, plain, plain + 10, domains) == []
    longer = b"jdupont [at] mail.chu-rennes.fr.com"
    assert verify._obfuscated(longer, longer.index(b"chu"), longer.index(b"chu") + 10, domains) == []


# -- phones ------------------------------------------------------------------------------


def groupings(e164: str) -> list[str]:
    d = "0" + e164[3:]
    return [f"{d[:2]} {d[2:4]} {d[4:7]} {d[7:]}", "/".join(d[i:i + 2] for i in range(0, 10, 2)),
            f"{d[:4]} {d[4:6]} {d[6:8]} {d[8:]}", f"{d[:2]} {d[2:6]} {d[6:]}"]


@pytest.mark.parametrize("index", range(4))
def test_phone_groupings_are_matched(world, canary, tmp_path, index):
    writing = groupings(canary.phone)[index]
    got = found(world, tmp_path, f"Tel: {writing}\n")
    assert got.get("phone") == [writing]


def test_a_phone_one_digit_off_in_any_grouping_is_not(world, canary, tmp_path):
    last = str((int(canary.phone[-1]) + 1) % 10)
    decoys = [w[:-1] + last for w in groupings(canary.phone)]
    assert found(world, tmp_path, "\n".join(f"Tel: {d}" for d in decoys) + "\n").get("phone") is None


# -- NIR ---------------------------------------------------------------------------------


def nir_writings(nir: str) -> list[str]:
    b = nir
    return [f"{b[0]}.{b[1:3]}.{b[3:5]}.{b[5:7]}.{b[7:10]}.{b[10:13]}.{b[13:]}",
            f"{b[0]}-{b[1:3]}-{b[3:5]}-{b[5:7]}-{b[7:10]}-{b[10:13]}-{b[13:]}",
            f"{b[0]} {b[1:5]} {b[5:10]} {b[10:13]} {b[13:]}"]


@pytest.mark.parametrize("index", range(3))
def test_nir_writings_are_matched_when_corroborated(world, canary, tmp_path, index):
    writing = nir_writings(canary.nir)[index]
    got = found(world, tmp_path, f"{canary.last_name};{canary.first_names[0]};{writing}\n")
    assert writing in got.get("nir", [])


def test_a_nir_with_a_wrong_key_in_a_new_writing_is_not(world, canary, tmp_path):
    wrong = canary.nir[:13] + f"{(int(canary.nir[13:]) + 1) % 97:02d}"
    text = f"{canary.last_name};{canary.first_names[0]};{nir_writings(wrong)[0]}\n"
    assert "nir" not in found(world, tmp_path, text)


# -- dates in fingerprints -----------------------------------------------------------------


def date_writings(day: date) -> list[str]:
    month, short = MONTHS[day.month - 1], ABBREVIATED[day.month - 1]
    return [f"{day.day:02d} {month} {day.year}", f"{day.day} {short} {day.year}",
            f"{day.day} {month} {day.year % 100:02d}", f"{day.day:02d} {short} {day.year % 100:02d}",
            f"{day.day} {month.capitalize()} {day.year}"]


@pytest.mark.parametrize("index", range(5))
def test_birth_dates_with_month_names_complete_a_fingerprint(world, canary, tmp_path, index):
    writing = date_writings(canary.birth_date)[index]
    text = f"Patient : {canary.last_name.upper()} {canary.first_names[0]}, né(e) le {writing}\n"
    assert "fingerprint" in found(world, tmp_path, text)


def test_a_month_name_date_of_another_day_is_not(world, canary, tmp_path):
    other = canary.birth_date.replace(day=28 if canary.birth_date.day != 28 else 27)
    text = f"Patient : {canary.last_name.upper()} {canary.first_names[0]}, né(e) le {date_writings(other)[0]}\n"
    assert "fingerprint" not in found(world, tmp_path, text)


def excel_serial(day: date) -> int:
    return (day - date(1899, 12, 30)).days


def test_an_excel_serial_date_under_a_birth_date_header_completes_a_fingerprint(world, canary, tmp_path):
    text = (f"nom;prenom;date_naissance;ville\n"
            f"{canary.last_name};{canary.first_names[0]};{excel_serial(canary.birth_date)};Rennes\n")
    writings: dict = {}
    assert "fingerprint" in found(world, tmp_path, text, "leak.csv", writings)
    assert writings["fingerprint"] == {"excel serial"}


def test_an_excel_serial_under_another_header_is_not_a_birth_date(world, canary, tmp_path):
    text = (f"nom;prenom;montant;ville\n"
            f"{canary.last_name};{canary.first_names[0]};{excel_serial(canary.birth_date)};Rennes\n")
    assert "fingerprint" not in found(world, tmp_path, text, "leak.csv")


# -- pretty-printed JSON -------------------------------------------------------------------


def test_a_pretty_printed_fhir_patient_is_one_record(world, canary, tmp_path):
    """The birth date far (> 100 bytes) from the names: a JSON object is one patient."""
    given = ",\n".join(f'            "{g}"' for g in canary.first_names)
    text = (
        '{\n  "resourceType": "Bundle",\n  "entry": [\n    {\n      "resource": {\n'
        '        "resourceType": "Patient",\n        "id": "pat-1",\n'
        '        "name": [\n          {\n            "use": "official",\n'
        f'            "family": "{canary.birth_name}",\n            "given": [\n{given}\n            ]\n'
        '          },\n          {\n            "use": "usual",\n'
        f'            "family": "{canary.last_name}",\n            "given": ["{canary.first_names[0]}"]\n'
        '          }\n        ],\n        "gender": "unknown",\n'
        '        "address": [{"line": ["12 rue des Lilas"], "city": "Rennes", "postalCode": "35000"}],\n'
        f'        "birthDate": "{canary.birth_date.isoformat()}"\n      }}\n    }},\n'
        '    {\n      "resource": {\n        "resourceType": "Patient",\n        "id": "pat-2",\n'
        '        "name": [{"family": "Autre", "given": ["Personne"]}],\n'
        '        "birthDate": "1950-01-01"\n      }\n    }\n  ]\n}\n')
    assert "fingerprint" in found(world, tmp_path, text, "bundle.json")


def test_names_and_a_birth_date_of_two_json_objects_are_not_one_record(world, canary, tmp_path):
    text = (
        '[\n  {\n    "nom": "' + canary.last_name + '",\n    "prenom": "' + canary.first_names[0] + '",\n'
        '    "naissance": "1950-01-01"\n  },\n  {\n    "nom": "Autre",\n    "prenom": "Personne",\n'
        '    "naissance": "' + canary.birth_date.isoformat() + '"\n  }\n]\n')
    assert "fingerprint" not in found(world, tmp_path, text, "list.json")


@pytest.mark.parametrize("header,index", [
    ("nom;prenom;date_naissance;cp", 2), ("Nom,Prénom,Date de naissance", 2), ("id\tDDN\tville", 1),
    ('"NOM";"DOB";"CP"', 1), ("nom|Né le|tel", 1), ("nom;prenom;cp;montant", None), ("une ligne de texte", None),
])
def test_the_birth_date_column_is_found_from_the_header(header, index):
    from canary.scan import serials

    column = serials.birth_column(header)
    assert (column.index if column else None) == index


def test_only_the_birth_date_column_is_converted():
    from canary.scan import serials

    column = serials.birth_column("nom;naissance;cp")
    data = b'nom;naissance;cp\nMARTIN;19362;35000\n"X";"19362.0";35000\nY;99999;35000\nZ;;35000\n'
    assert serials.convert(data, column) == (b'nom;naissance;cp\nMARTIN;1953-01-03;35000\n'
                                            b'"X";"1953-01-03";35000\nY;99999;35000\nZ;;35000\n')


def test_a_birth_date_column_written_as_dates_is_not_rewritten():
    from canary.scan import serials

    column = serials.birth_column("nom;naissance;cp")
    dates = b"nom;naissance;cp\n" + b"".join(b"X%d;03/01/1953;35000\n" % i for i in range(50))
    serial = b"nom;naissance;cp\n" + b"".join(b"X%d;19362;35000\n" % i for i in range(50))
    assert serials.holds_serials(dates, column) is None
    assert serials.holds_serials(serial, column) == column


def test_a_canary_named_bertrand_bertrand_is_not_any_row_whose_surname_and_birth_name_are_bertrand():
    """Met with 100,000 canaries over 2.8 million ordinary rows: "Bertrand;Bertrand;Sylvie" holds
    the word twice (surname, birth name), as a canary "Bertrand Bertrand" without birth name would."""
    from canary.scan import verify

    def named(line: bytes, surnames=(b"bertrand",)):
        return verify._Record(line, 0).named(surnames, (b"bertrand",))

    assert named(b"13363321;Bertrand;Bertrand;Sylvie;F;19/02/1953;38 rue Thiers") is None
    assert named(b"13363321;Bertrand;Bertrand;Bertrand;M;19/02/1953;38 rue Thiers") is not None
    assert named(b"13363321;Bertrand;Durand;Bertrand;M;19/02/1953", (b"bertrand", b"durand")) is not None
