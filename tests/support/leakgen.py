"""Ordinary patient rows for test and benchmark leaks: realistic, fast, never canaries.

Names come from the same reference tables as the canary generator (so every
canary surname and first name also appears in ordinary rows: a name alone
must never match); contact points are ordinary ones (webmail domains, phone
numbers outside our pool, NIRs that are not canary NIRs). A row that would
carry a canary's full fingerprint (surname + first name + birth date) is
redrawn: such a row would be a true homonym, not a false match.

About 3 µs a row: a million rows take a few seconds.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable, Iterator
from datetime import date, timedelta

from canary.identity import refdata
from canary.identity.nir import nir_key

HEADER = ("ipp", "nom", "nom_naissance", "prenom", "sexe", "date_naissance", "adresse", "code_postal",
          "ville", "telephone", "email", "nir", "medecin_traitant", "derniere_visite", "service")

ORDINARY_DOMAINS = ("gmail.com", "orange.fr", "free.fr", "hotmail.fr", "yahoo.fr", "laposte.net", "sfr.fr",
                    "wanadoo.fr", "outlook.fr", "icloud.com")
SERVICES = ("Cardiologie", "Urgences", "Pédiatrie", "Gériatrie", "Maternité", "Pneumologie", "Biologie",
            "Radiologie", "Chirurgie viscérale", "Néphrologie", "Oncologie", "Rhumatologie")
_EPOCH = date(1920, 1, 1).toordinal()
_LAST = date(2024, 12, 31).toordinal()
_VISITS = date(2015, 1, 1).toordinal()


def _weights(table: refdata.Weighted) -> tuple[tuple, tuple]:
    return table.items, table.cum_weights


class OrdinaryRows:
    """Draws rows as tuples in ``HEADER`` order (strings), dates as ``date``."""

    def __init__(self, seed: int = 0, *, avoid_phones: Iterable[str] = (), avoid_nirs: Iterable[str] = (),
                 avoid_fingerprints: Iterable[tuple[str, str, date]] = (), pool: int = 20_000) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        names, cum = _weights(refdata.surnames())
        self._surnames = rng.choices(names, cum_weights=cum, k=pool)
        self._first: dict[tuple[str, int], list[str]] = {}
        for sex in "MF":
            for decade in range(1920, 2030, 10):
                items, cum = _weights(refdata.first_names(sex, decade))
                self._first[sex, decade] = rng.choices(items, cum_weights=cum, k=max(200, pool // 20))
        communes = [c for c in refdata.communes() if refdata.postcodes(c.insee_code)]
        weights = [c.population for c in communes]
        self._places = [(c, refdata.postcodes(c.insee_code)[0]) for c in
                        rng.choices(communes, weights=weights, k=pool)]
        streets, cum = _weights(refdata.street_names())
        self._streets = rng.choices(streets, cum_weights=cum, k=pool)
        self._avoid_phones = {p[-9:] for p in avoid_phones}
        self._avoid_nirs = {n[:13] for n in avoid_nirs}
        self._avoid_fp = {(_fold(s), _fold(f), d) for s, f, d in avoid_fingerprints}
        self._ipp = 10_000_000

    def row(self) -> tuple:
        rand = self.rng.random
        surnames, nsur = self._surnames, len(self._surnames)
        while True:
            sex = "F" if rand() < 0.52 else "M"
            born = date.fromordinal(_EPOCH + int(rand() * (_LAST - _EPOCH)))
            firsts = self._first[sex, min(born.year // 10 * 10, 2020)]
            first = firsts[int(rand() * len(firsts))]
            surname = surnames[int(rand() * nsur)]
            birth_name = surname
            if sex == "F" and born.year < 1995 and rand() < 0.5:
                birth_name = surnames[int(rand() * nsur)]
            if not self._avoid_fp or ((_fold(surname), _fold(first), born) not in self._avoid_fp
                                      and (_fold(birth_name), _fold(first), born) not in self._avoid_fp):
                break
        commune, postcode = self._places[int(rand() * len(self._places))]
        street = f"{1 + int(rand() * 140)} {self._streets[int(rand() * len(self._streets))]}"
        phone = self._phone(rand)
        if rand() < 0.6:
            local = f"{_slug(first)}.{_slug(surname)}"
        else:
            local = f"{_slug(first)[:1]}{_slug(surname)}{1 + int(rand() * 98)}"
        email = f"{local}@{ORDINARY_DOMAINS[int(rand() * len(ORDINARY_DOMAINS))]}"
        nir = self._nir(rand, sex, born, commune.insee_code)
        gps = self._first["M" if rand() < 0.5 else "F", 1970]
        gp = f"Dr {gps[int(rand() * len(gps))]} {surnames[int(rand() * nsur)]}"
        visit = date.fromordinal(_VISITS + int(rand() * (_LAST - _VISITS)))
        self._ipp += 1 + int(rand() * 40)
        return (str(self._ipp), surname, birth_name, first, sex, born, street, postcode, commune.name,
                phone, email, nir, gp, visit, SERVICES[int(rand() * len(SERVICES))])

    def rows(self, count: int) -> Iterator[tuple]:
        for _ in range(count):
            yield self.row()

    def csv_lines(self, count: int, delimiter: str = ";") -> Iterator[str]:
        """``count`` rows as CSV lines, the fast way (dd/mm/yyyy dates, spaced phones)."""
        rand = self.rng.random
        days = self._days()
        ndays, span = len(days), _LAST - _VISITS
        surnames, nsur = self._surnames, len(self._surnames)
        places, streets = self._places, self._streets
        first = self._first
        ipp = self._ipp
        d = delimiter
        for _ in range(count):
            while True:
                sex = "F" if rand() < 0.52 else "M"
                text, year, month, born = days[int(rand() * ndays)]
                firsts = first[sex, min(year // 10 * 10, 2020)]
                given = firsts[int(rand() * len(firsts))]
                surname = surnames[int(rand() * nsur)]
                birth_name = surnames[int(rand() * nsur)] if sex == "F" and rand() < 0.3 else surname
                if not self._avoid_fp or ((_fold(surname), _fold(given), born) not in self._avoid_fp
                                          and (_fold(birth_name), _fold(given), born) not in self._avoid_fp):
                    break
            commune, postcode = places[int(rand() * len(places))]
            phone = self._phone(rand)
            slug_first, slug_last = _slug(given), _slug(surname)
            if rand() < 0.6:
                local = f"{slug_first}.{slug_last}"
            else:
                local = f"{slug_first[:1]}{slug_last}{1 + int(rand() * 98)}"
            ipp += 1 + int(rand() * 40)
            body = f"{1 if sex == 'M' else 2}{year % 100:02d}{month:02d}{commune.insee_code}" \
                   f"{1 + int(rand() * 999):03d}"
            nir = body + nir_key(body) if body not in self._avoid_nirs else body + "00"
            gps = first["M" if rand() < 0.5 else "F", 1970]
            yield (f"{ipp}{d}{surname}{d}{birth_name}{d}{given}{d}{sex}{d}{text}{d}"
                   f"{1 + int(rand() * 140)} {streets[int(rand() * len(streets))]}{d}{postcode}{d}"
                   f"{commune.name}{d}{phone[:2]} {phone[2:4]} {phone[4:6]} {phone[6:8]} {phone[8:]}{d}"
                   f"{local}@{ORDINARY_DOMAINS[int(rand() * len(ORDINARY_DOMAINS))]}{d}{nir}{d}"
                   f"Dr {gps[int(rand() * len(gps))]} {surnames[int(rand() * nsur)]}{d}"
                   f"{days[-1 - int(rand() * span)][0]}{d}{SERVICES[int(rand() * len(SERVICES))]}\n")
        self._ipp = ipp

    @functools.cache
    def _days(self) -> list[tuple[str, int, int, date]]:
        out = []
        for ordinal in range(_EPOCH, _LAST + 1):
            day = date.fromordinal(ordinal)
            out.append((f"{day.day:02d}/{day.month:02d}/{day.year}", day.year, day.month, day))
        return out

    def _phone(self, rand) -> str:
        while True:
            if rand() < 0.8:
                nsn = f"{6 + int(rand() * 2)}{int(rand() * 100_000_000):08d}"
            else:
                nsn = f"{1 + int(rand() * 5)}{int(rand() * 100_000_000):08d}"
            if nsn not in self._avoid_phones:
                return "0" + nsn

    def _nir(self, rand, sex: str, born: date, insee: str) -> str:
        while True:
            body = f"{1 if sex == 'M' else 2}{born.year % 100:02d}{born.month:02d}{insee}" \
                   f"{1 + int(rand() * 999):03d}"
            if body not in self._avoid_nirs:
                return body + nir_key(body)


_ACCENTS = str.maketrans("àâäáãåçéèêëíìîïñóòôöõúùûüýÿÀÂÄÁÃÅÇÉÈÊËÍÌÎÏÑÓÒÔÖÕÚÙÛÜÝŸ",
                         "aaaaaaceeeeiiiinooooouuuuyyAAAAAACEEEEIIIINOOOOOUUUUYY")


@functools.cache
def _fold(text: str) -> str:
    return text.translate(_ACCENTS).lower()


@functools.cache
def _slug(text: str) -> str:
    return "".join(ch for ch in _fold(text) if ch.isalnum() or ch == "-")


def csv_line(row: tuple, delimiter: str = ";") -> str:
    """One row in the usual French export layout (dd/mm/yyyy dates, spaced phones)."""
    out = list(row)
    out[5], out[13] = _dmy(out[5]), _dmy(out[13])
    p = out[9]
    out[9] = f"{p[:2]} {p[2:4]} {p[4:6]} {p[6:8]} {p[8:]}"
    return delimiter.join(out) + "\n"


def _dmy(value: date) -> str:
    return f"{value.day:02d}/{value.month:02d}/{value.year}"


def days(n: int) -> timedelta:
    return timedelta(days=n)


# -- registries with planted canaries ------------------------------------------------------

DOMAINS = ("mel-famille.fr", "boite-perso.fr")
POOL = tuple([f"+33607{n:06d}" for n in range(100, 1400)] + [f"+33299{n:06d}" for n in range(100, 400)])


def contacts(pool=POOL):
    from canary.contacts import ContactPoints

    return ContactPoints(email_domains=DOMAINS, dns_zone="mon-rdv-sante.fr",
                         portal_url="https://espace.mon-rdv-sante.fr/acces/", phone_pool=tuple(pool))


class World:
    """A registry with sources, batches and planted canaries (planted_at under control)."""

    def __init__(self, registry, seed: int = 1, today: date = date(2024, 6, 1)) -> None:
        from canary.identity.generator import IdentityGenerator

        self.registry = registry
        self.generator = IdentityGenerator(contacts(), seed=seed, today=today)
        self.records = {}  # canary id -> CanaryRecord
        self.by_source: dict[str, list[int]] = {}

    def source(self, name: str) -> None:
        from canary.model import SourceSpec

        self.registry.add_source(SourceSpec(name=name, seeder="sql", url_env="X_URL", establishment=f"CH {name}",
                                            alert_to=(f"dpo@{name}.example",)))
        self.by_source[name] = []

    def plant(self, source: str, count: int, at, label: str | None = None, step=None) -> list[int]:
        """Plant ``count`` canaries in a new batch, the i-th at ``at + i * step``."""
        from freezegun import freeze_time

        from canary.model import Placement
        from canary.tokens import tokens_of

        step = step or timedelta(minutes=1)
        batch = self.registry.new_batch(source, label, "tester", count)
        ids = []
        for i in range(count):
            identity = self.generator.generate()
            record = self.registry.add_planned(batch, identity, tokens_of(identity))
            with freeze_time(at + i * step):
                self.registry.mark_planted(record.id, Placement(rows=({"table": "t", "key": {"id": record.id},
                                                                       "values": {}},)))
            ids.append(record.id)
        for record in self.registry.list_canaries(batch=batch.label):
            self.records[record.id] = record
        self.by_source[source] += ids
        return ids

    def identity(self, canary_id: int):
        return self.records[canary_id].identity

    def source_of(self, canary_id: int) -> str:
        return self.records[canary_id].source

    def avoid(self) -> dict:
        people = [r.identity for r in self.records.values()]
        return {
            "avoid_phones": [p for i in people for p in (i.phone, i.phone2) if p],
            "avoid_nirs": [i.nir for i in people],
            "avoid_fingerprints": [(n, f, i.birth_date) for i in people for n in {i.last_name, i.birth_name}
                                   for f in i.first_names],
        }


# -- canary rows in every writing ----------------------------------------------------------

PHONE_STYLES = ("national", "spaced", "dotted", "dashed", "intl", "intl_spaced", "intl00", "plain33",
                "intl00_spaced", "intl_0")
DATE_STYLES = ("dd/mm/yyyy", "yyyy-mm-dd", "dd-mm-yyyy", "dd.mm.yyyy", "yyyymmdd", "d mois yyyy", "dd/mm/yy",
               "iso_time")
NIR_STYLES = ("plain", "spaced", "key_apart")
_MOIS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
         "novembre", "décembre")


def write_phone(e164: str, style: str) -> str:
    nsn = e164[3:]
    pairs = [nsn[1:3], nsn[3:5], nsn[5:7], nsn[7:9]]
    national = "0" + nsn
    spaced = " ".join([national[:2]] + pairs)
    return {
        "national": national, "spaced": spaced, "dotted": spaced.replace(" ", "."),
        "dashed": spaced.replace(" ", "-"), "intl": "+33" + nsn, "intl_spaced": "+33 " + nsn[0] + " " + " ".join(pairs),
        "intl00": "0033" + nsn, "plain33": "33" + nsn, "intl00_spaced": "0033 " + nsn[0] + " " + " ".join(pairs),
        "intl_0": "+33 (0)" + nsn[0] + " " + " ".join(pairs),
    }[style]


def write_date(day: date, style: str) -> str:
    if style == "d mois yyyy":
        return f"{day.day} {_MOIS[day.month - 1]} {day.year}"
    if style == "yyyymmdd":
        return f"{day:%Y%m%d}"
    if style == "dd/mm/yy":
        return f"{day:%d/%m/%y}"
    if style == "iso_time":
        return f"{day.isoformat()} 00:00:00"
    return {"dd/mm/yyyy": f"{day:%d/%m/%Y}", "yyyy-mm-dd": day.isoformat(), "dd-mm-yyyy": f"{day:%d-%m-%Y}",
            "dd.mm.yyyy": f"{day:%d.%m.%Y}"}[style]


def write_nir(nir: str, style: str) -> str:
    if style == "spaced":
        return f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:7]} {nir[7:10]} {nir[10:13]} {nir[13:]}"
    if style == "key_apart":
        return f"{nir[:13]} {nir[13:]}"
    return nir


def canary_row(identity, rng: random.Random, *, date_style: str | None = None, phone_style: str | None = None,
               nir_style: str | None = None, strip_contacts: bool = False) -> dict:
    """A patient row for a canary, each value in a writing drawn from the styles."""
    date_style = date_style or rng.choice(DATE_STYLES)
    surname = identity.last_name.upper() if rng.random() < 0.5 else identity.last_name
    first = identity.first_name if rng.random() < 0.7 else _strip(identity.first_name).upper()
    row = {"ipp": str(rng.randint(10_000_000, 99_999_999)), "nom": surname, "nom_naissance": identity.birth_name,
           "prenom": first, "sexe": identity.sex.value, "date_naissance": write_date(identity.birth_date, date_style),
           "adresse": identity.address.line1, "code_postal": identity.address.postcode,
           "ville": identity.address.city}
    if not strip_contacts:
        row.update({
            "telephone": write_phone(identity.phone, phone_style or rng.choice(PHONE_STYLES)),
            "email": identity.email if rng.random() < 0.7 else identity.email.upper(),
            "nir": write_nir(identity.nir, nir_style or rng.choice(NIR_STYLES)),
            "portail": identity.portal_url,
        })
    return row


def _strip(text: str) -> str:
    return text.translate(_ACCENTS)


def ordinary_dicts(rows: OrdinaryRows, count: int, date_style: str = "dd/mm/yyyy") -> list[dict]:
    out = []
    for values in rows.rows(count):
        row = dict(zip(HEADER, values))
        for key in ("date_naissance", "derniere_visite"):
            row[key] = write_date(row[key], date_style)
        row["telephone"] = write_phone("+33" + row["telephone"][1:], "spaced")
        out.append(row)
    return out


def mix(ordinary: list[dict], canaries: list[dict], rng: random.Random) -> list[dict]:
    rows = list(ordinary)
    for row in canaries:
        rows.insert(rng.randint(0, len(rows)), row)
    return rows


# -- leak files ----------------------------------------------------------------------------


def columns(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def to_csv(rows: list[dict], delimiter: str = ";", header: bool = True, quote: bool = False) -> str:
    cols = columns(rows)
    q = (lambda v: '"' + v.replace('"', '""') + '"') if quote else (lambda v: v)
    lines = [delimiter.join(q(c) for c in cols)] if header else []
    lines += [delimiter.join(q(str(r.get(c, ""))) for c in cols) for r in rows]
    return "\n".join(lines) + "\n"


def to_mysqldump(rows: list[dict], table: str = "patients", per_insert: int = 50) -> str:
    cols = columns(rows)
    out = ["-- MySQL dump 10.13", f"DROP TABLE IF EXISTS `{table}`;"]
    for start in range(0, len(rows), per_insert):
        values = ",".join("(" + ",".join("'" + str(r.get(c, "")).replace("\\", "\\\\").replace("'", "\\'") + "'"
                                         for c in cols) + ")" for r in rows[start:start + per_insert])
        out.append(f"INSERT INTO `{table}` VALUES {values};")
    return "\n".join(out) + "\n"


def to_pg_copy(rows: list[dict], table: str = "patients") -> str:
    cols = columns(rows)
    out = ["-- PostgreSQL database dump", f"COPY public.{table} ({', '.join(cols)}) FROM stdin;"]
    out += ["\t".join(str(r.get(c, "")) or "\\N" for c in cols) for r in rows]
    out.append("\\.")
    return "\n".join(out) + "\n"


def to_json(rows: list[dict], ascii_only: bool = False) -> str:
    import json

    return json.dumps(rows, indent=2, ensure_ascii=ascii_only) + "\n"


def to_jsonl(rows: list[dict]) -> str:
    import json

    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def to_paste(rows: list[dict]) -> str:
    labels = {"nom": "Nom", "prenom": "Prénom", "date_naissance": "Né(e) le", "telephone": "Tél",
              "email": "Mail", "nir": "N° SS", "ville": "Ville"}
    blocks = ["=== dump patients — leaked by xX_h4x_Xx ==="]
    for r in rows:
        blocks.append("\n".join(f"{labels[k]}: {r[k]}" for k in labels if k in r))
    return "\n\n".join(blocks) + "\n"


def to_xlsx(path, rows: list[dict], date_cells: bool = True) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Patients"
    cols = columns(rows)
    sheet.append(cols)
    for r in rows:
        sheet.append([r.get(c, "") for c in cols])
    book.save(path)


def write_text(path, text: str, encoding: str = "utf-8", container: str = "plain") -> None:
    """``text`` encoded (utf-8, cp1252, utf-16 with BOM) in a container (plain, gz, bz2, xz)."""
    import bz2
    import gzip
    import lzma
    from pathlib import Path

    data = text.encode(encoding, errors="strict")
    opener = {"plain": open, "gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}[container]
    with opener(Path(path), "wb") as handle:
        handle.write(data)


def zip_members(path, members: dict[str, bytes]) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
