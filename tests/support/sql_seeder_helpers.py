"""Test helpers for the SQL seeder: identities, the test LIS schema, real rows, snapshots.

Identities are built by hand (not by the identity generator) with values that
vary the way real ones do: accents, compound and married names, missing
second phone, empty address line 2, no treatments.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from canary.model import Address, Birthplace, Identity, Practitioner, Sex, SourceSpec
from seeders.common.transforms import strip_accents

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SCHEMA = FIXTURES / "lis_schema.sql"
MAPPING = FIXTURES / "lis_mapping.toml"

_LAST = ["Martin", "Lefèvre", "Boulanger", "Nguyen", "Girard-Rousseau", "Da Silva", "Œuvrard", "Müller",
         "Bénard", "Roux", "Fontaine", "Chevalier", "Lambert", "Mercier", "Dupré", "Garnier"]
_FIRST_F = ["Marie", "Léa", "Chloé", "Anne-Sophie", "Élodie", "Inès", "Brigitte", "Zoé"]
_FIRST_M = ["Jean", "Lucas", "Hugo", "Jean-Pierre", "Théo", "Mathéo", "Gérard", "Noël"]
_CITIES = [("75011", "Paris", "75111", "75"), ("69003", "Lyon", "69383", "69"), ("13005", "Marseille", "13205", "13"),
           ("33000", "Bordeaux", "33063", "33"), ("59000", "Lille", "59350", "59"), ("97400", "Saint-Denis", "97411", "974")]
_STREETS = ["rue des Tilleuls", "avenue Jean Jaurès", "boulevard de la Liberté", "impasse des Lilas", "place de l'Église"]


def make_identity(i: int, **changes) -> Identity:
    """The i-th test identity: NIR, email, phone, login and URL code unique per i."""
    rnd = random.Random(i)
    sex = Sex.FEMALE if i % 2 else Sex.MALE
    firsts = _FIRST_F if sex is Sex.FEMALE else _FIRST_M
    first_names = tuple(rnd.sample(firsts, 1 + i % 3))
    last = rnd.choice(_LAST)
    married = sex is Sex.FEMALE and i % 4 == 1
    birth = date(1935, 1, 1) + timedelta(days=rnd.randrange(0, 32000))
    postcode, city, insee, dep = _CITIES[i % len(_CITIES)]
    nir = f"{1 if sex is Sex.MALE else 2}{birth:%y%m}99{i:06d}"[:13] + f"{i % 97:02d}"
    fields = dict(
        sex=sex,
        civility="Mme" if sex is Sex.FEMALE else "M.",
        first_names=first_names,
        last_name=rnd.choice(_LAST) if married else last,
        birth_name=last,
        birth_date=birth,
        birthplace=Birthplace(insee_code=insee, name=city, departement=dep),
        nir=nir,
        address=Address(line1=f"{1 + i % 120} {rnd.choice(_STREETS)}", postcode=postcode, city=city,
                        insee_code=insee, departement=dep, line2="Bâtiment B" if i % 5 == 0 else ""),
        phone=f"+336{10000000 + i:08d}",
        phone2=None if i % 3 else f"+339{20000000 + i:08d}",
        email=f"{strip_accents(first_names[0]).lower()}.{i}@courriel-test.fr",
        url_code=f"c{i:05d}x",
        portal_url=f"https://portail.example.fr/acces/c{i:05d}x",
        dns_label=f"d{i:05d}",
        hostname=f"d{i:05d}.zone.example.fr",
        portal_login=f"pat{i:06d}",
        portal_password=f"pw-{i:06d}-Zq",
        blood_group=rnd.choice(["A+", "O-", "B+", "AB+"]),
        allergies=("pénicilline",) if i % 7 == 0 else (),
        treatments=() if i % 4 == 0 else ("amlodipine 5 mg", "metformine 850 mg")[: 1 + i % 2],
        gp=Practitioner(civility="Dr", first_name="Claire", last_name="Moreau", rpps=f"1{i:010d}"),
    )
    fields.update(changes)
    return Identity(**fields)


_PLACEHOLDERS = {
    "sqlite": {"serial": "INTEGER PRIMARY KEY", "datetime": "DATETIME"},
    "mysql": {"serial": "INTEGER AUTO_INCREMENT PRIMARY KEY", "datetime": "DATETIME"},
    "postgresql": {"serial": "SERIAL PRIMARY KEY", "datetime": "TIMESTAMP"},
}


def create_schema(url: str, schema_file: Path = SCHEMA) -> None:
    engine = sa.create_engine(url)
    try:
        words = _PLACEHOLDERS[engine.dialect.name]
        ddl = schema_file.read_text(encoding="utf-8")
        ddl = "\n".join(line for line in ddl.splitlines() if not line.startswith("--"))
        with engine.begin() as conn:
            for statement in ddl.split(";"):
                if statement.strip():
                    conn.exec_driver_sql(statement.format(**words))
    finally:
        engine.dispose()


def populate_real(url: str, count: int = 300) -> None:
    """``count`` patients as the hospital application wrote them, with contacts, accounts, results."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    t = md.tables
    rnd = random.Random(7)
    patients, contacts, accounts, results = [], [], [], []
    for n in range(1, count + 1):
        ident = make_identity(100000 + n)
        patients.append(dict(
            id=n, ipp=5000 + n * 3, nom=ident.last_name.upper(), nom_naissance=ident.birth_name.upper(),
            prenom=ident.first_name, prenoms=" ".join(ident.first_names), sexe="H" if ident.sex is Sex.MALE else "F",
            date_naissance=ident.birth_date, naissance_txt=f"{ident.birth_date:%d/%m/%Y}",
            nir=f"{ident.nir[:5]}88{n:06d}{n % 97:02d}", adresse1=ident.address.line1,
            adresse2=ident.address.line2 or None, code_postal=ident.address.postcode,
            ville=ident.address.city.upper(), tel=f"06 {rnd.randrange(10, 99)} 11 22 {n % 100:02d}",
            medecin="DR MOREAU CLAIRE", rpps="10000000001", groupe_sanguin=ident.blood_group,
            traitements="", origine=rnd.choice(["ADM", "URG"]),
            cree_le=datetime(2019, 1, 1) + timedelta(hours=n * 7), modifie_le=None,
        ))
        contacts.append(dict(id=n, patient_id=n, type="EMAIL", valeur=f"real{n}@hopital-mail.fr",
                             uuid=f"00000000-0000-4000-8000-{n:012d}"))
        accounts.append(dict(jeton=f"{n:032x}", patient_id=n, login=f"real{n:05d}", secret="x" * 20,
                             lien=f"https://portail.example.fr/acces/r{n}"))
        results.append(dict(id=n, patient_id=n, code="NFS", resultat=f"{rnd.uniform(3, 12):.1f}",
                            prelevement=date(2024, 1, 1) + timedelta(days=n % 200)))
    with engine.begin() as conn:
        conn.execute(t["patients"].insert(), patients)
        conn.execute(t["contacts"].insert(), contacts)
        conn.execute(t["portail"].insert(), accounts)
        conn.execute(t["analyses"].insert(), results)
    if engine.dialect.name == "postgresql":  # explicit ids: move the serial sequences past them
        with engine.begin() as conn:
            for table in ("patients", "contacts", "analyses"):
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {count})")
    engine.dispose()


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    out = {}
    with engine.connect() as conn:
        for name, table in md.tables.items():
            order = list(table.primary_key.columns) or list(table.c)
            out[name] = [tuple(row) for row in conn.execute(sa.select(table).order_by(*order))]
    engine.dispose()
    return out


def execute(url: str, sql: str, **params) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)
    engine.dispose()


def count_rows(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
    engine.dispose()
    return n


def source_spec(mapping: Path | str = MAPPING, name: str = "lis") -> SourceSpec:
    return SourceSpec(name=name, seeder="sql", mapping=str(mapping))


def mapping_without_related(folder: Path) -> Path:
    """The test mapping without its [[related]] footprint tables: registration rows only, no drip events."""
    text = MAPPING.read_text(encoding="utf-8")
    path = folder / "lis_mapping_plain.toml"
    path.write_text(text[:text.index("\n[[related]]")] + "\n" + text[text.index("\n[match]"):], encoding="utf-8")
    return path
