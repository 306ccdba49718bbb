"""`canary demo`: the whole loop on embedded defaults, in one folder.

A SQLite registry, a SQLite demo EHR of ordinary patients, canaries planted
into it through the generic SQL seeder, then what happens in real life: the
table is dumped to a CSV (the leak) and the canaries in it name their source;
someone deletes and edits canaries and verify notices; retire restores the
table exactly. Everything stays in the folder; nothing touches the network.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import sqlite3
import tempfile
from contextlib import closing
from importlib import resources
from pathlib import Path
from typing import Callable

from canary.contacts import ContactPoints, demo_contacts
from canary.model import SourceSpec, TokenKind

Echo = Callable[[str], None]

DEMO_SOURCE = "dpi-demo"
DEMO_ESTABLISHMENT = "Clinique de démonstration"
BACKGROUND_PATIENTS = 1000
CANARIES = 12

EHR_SCHEMA = """
CREATE TABLE patients (
    patient_id INTEGER PRIMARY KEY AUTOINCREMENT,
    ipp INTEGER NOT NULL UNIQUE,
    civilite VARCHAR(4) NOT NULL,
    nom VARCHAR(80) NOT NULL,
    nom_naissance VARCHAR(80),
    prenom VARCHAR(60) NOT NULL,
    prenoms VARCHAR(120),
    sexe CHAR(1) NOT NULL,
    naissance CHAR(10) NOT NULL,
    lieu_naissance VARCHAR(80),
    matricule CHAR(15),
    adresse VARCHAR(120),
    complement VARCHAR(120),
    cp CHAR(5),
    ville VARCHAR(80),
    tel VARCHAR(20),
    tel2 VARCHAR(20),
    email VARCHAR(120),
    groupe_sanguin VARCHAR(3),
    allergies TEXT,
    traitements TEXT,
    medecin_traitant VARCHAR(120),
    rpps_medecin CHAR(11),
    portail_login VARCHAR(60),
    portail_mdp VARCHAR(60),
    lien_portail VARCHAR(200),
    cree_le VARCHAR(19) NOT NULL
);
CREATE INDEX patients_matricule ON patients (matricule);
CREATE INDEX patients_nom ON patients (nom, prenom);
"""

# Real patients of the demo EHR write from ordinary mailboxes; these addresses
# only ever live in the demo's own SQLite file.
ORDINARY_MAIL_DOMAINS = ("orange.fr", "gmail.com", "free.fr", "laposte.net", "sfr.fr", "hotmail.fr", "wanadoo.fr")


def run_demo(directory: Path | None, echo: Echo) -> Path:
    if directory is None:
        workdir = Path(tempfile.mkdtemp(prefix="canary-demo-"))
        keep = False
    else:
        workdir = directory
        workdir.mkdir(parents=True, exist_ok=True)
        keep = True
    try:
        _run(workdir, echo)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return workdir


def _run(workdir: Path, echo: Echo) -> None:
    from canary import planting, upkeep
    from canary.config import Config
    from canary.registry import Registry

    ehr_path = workdir / "dpi-demo.db"
    mapping_path = workdir / "dpi-demo-mapping.toml"
    mapping_path.write_text(resources.files("canary").joinpath("templates/demo_mapping.toml").read_text("utf-8"),
                            encoding="utf-8")
    spec = SourceSpec(name=DEMO_SOURCE, seeder="sql", url=f"sqlite:///{ehr_path}", mapping=str(mapping_path),
                      establishment=DEMO_ESTABLISHMENT)

    echo(f"1. demo EHR: {ehr_path} with {BACKGROUND_PATIENTS} ordinary patients")
    _create_ehr(ehr_path, spec)
    before = table_digest(ehr_path)

    config = Config(path=None, registry_url=f"sqlite:///{workdir / 'canary-registry.db'}",
                    contacts=demo_contacts(), operator="demo")
    with Registry.open(config.registry_url, create=True) as registry:
        registry.add_source(spec)
        echo(f"2. registry: {workdir / 'canary-registry.db'} (mode 0600), source {DEMO_SOURCE!r} "
             f"({DEMO_ESTABLISHMENT})")

        result = planting.plant(registry, config, DEMO_SOURCE, CANARIES, allow_demo=True)
        echo(f"3. planted {result.count} canaries into {DEMO_SOURCE} (batch {result.batch}); "
             "the rows look like every other patient")
        sample = registry.get_canary(result.canary_ids[0]).identity
        echo(f"   e.g. {sample.civility} {sample.first_name} {sample.last_name}, né(e) le "
             f"{sample.birth_date:%d/%m/%Y}, NIR {sample.nir}, {sample.email}, {sample.phone}")

        report = upkeep.verify(registry)
        echo(f"4. verify: {report.counts().get('ok', 0)} ok")

        leak = workdir / "leak.csv"
        rows = _dump_csv(ehr_path, leak)
        found = _find_canaries(registry, leak)
        sources = sorted({registry.get_canary(cid).source for cid in found})
        echo(f"5. attacker dumps the table: {leak} ({rows} rows); {len(found)} canaries in it "
             f"name the source: {', '.join(sources) or 'none'}")

        deleted, edited = result.canary_ids[1], result.canary_ids[2]
        _tamper(ehr_path, registry.get_canary(deleted).identity.nir, registry.get_canary(edited).identity.nir)
        report = upkeep.verify(registry)
        problems = ", ".join(f"#{f.canary_id} {f.state}" for f in report.problems)
        echo(f"6. someone deletes one canary and edits another: verify reports {problems} (exit code 1)")

        records = upkeep.select_for_retire(registry, source=DEMO_SOURCE)
        retired = upkeep.retire(registry, records)
        restored = table_digest(ehr_path) == before
        echo(f"7. retired {len(retired.retired)} canaries: the patients table is "
             f"{'byte-for-byte as before planting' if restored else 'NOT as before (bug!)'}")
        if not restored:
            raise RuntimeError("demo: retire did not restore the table")
    echo(f"files: {workdir}")


def _create_ehr(path: Path, spec: SourceSpec) -> None:
    """The demo EHR, filled with ordinary patients written by the same mapping."""
    from canary.identity import IdentityGenerator
    from seeders import create_seeder

    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(EHR_SCHEMA)
    base = demo_contacts()
    ordinary = ContactPoints(email_domains=ORDINARY_MAIL_DOMAINS, dns_zone="portail.clinique-demo.fr",
                             portal_url="https://portail.clinique-demo.fr/acces/",
                             phone_pool=base.phone_pool[::-1], demo=True)
    generator = IdentityGenerator(ordinary, seed=20211, reserve_phones=True)
    seeder = create_seeder(spec, spec.url)
    seeder.open()
    try:
        rows = [seeder.plan(identity)[0].values for identity in generator.generate_many(BACKGROUND_PATIENTS)]
    finally:
        seeder.close()
    # One transaction for the whole history of the EHR (plant() commits per
    # patient, which is right for canaries but slow for a thousand rows).
    for ipp, row in enumerate(rows, start=1):
        row["ipp"] = ipp
        row.pop("patient_id", None)
    columns = list(rows[0])
    sql = f"INSERT INTO patients ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(sql, [[row[c] for c in columns] for row in rows])


def table_digest(path: Path) -> str:
    """SHA-256 over every row of every table, in key order."""
    digest = hashlib.sha256()
    with closing(sqlite3.connect(path)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for table in tables:
            if table == "sqlite_sequence":
                continue  # AUTOINCREMENT high-water mark: ids are never reused, by design
            for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY 1'):
                digest.update(repr((table, row)).encode())
    return digest.hexdigest()


def _dump_csv(ehr: Path, out: Path) -> int:
    with closing(sqlite3.connect(ehr)) as conn, out.open("w", newline="", encoding="utf-8") as fh:
        cursor = conn.execute("SELECT * FROM patients ORDER BY patient_id")
        writer = csv.writer(fh, delimiter=";")
        writer.writerow([d[0] for d in cursor.description])
        count = 0
        for row in cursor:
            writer.writerow(row)
            count += 1
    return count


def _find_canaries(registry, leak: Path) -> set[int]:
    """A first look at a leak: which rows carry one of our email addresses.

    (`canary scan` does this properly, in every format and writing.)
    """
    found: set[int] = set()
    with leak.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter=";"):
            record = registry.find_token(row["email"].strip().lower(), TokenKind.EMAIL)
            if record is not None:
                found.add(record.id)
    return found


def _tamper(ehr: Path, delete_nir: str, edit_nir: str) -> None:
    with closing(sqlite3.connect(ehr)) as conn, conn:
        conn.execute("DELETE FROM patients WHERE matricule = ?", (delete_nir,))
        conn.execute("UPDATE patients SET tel = '06 00 00 00 00' WHERE matricule = ?", (edit_nir,))
