"""`canary demo`: the whole loop on embedded defaults, in one folder.

A SQLite registry, a SQLite demo EHR of ordinary patients, canaries planted
into it through the generic SQL seeder, then the listener on loopback ports
with a local mail server standing for the security team's mailbox, and then
what happens in real life: the table is dumped to a CSV (the leak) and the
canaries in it name their source; the holder of the file resolves a canary
hostname, opens a portal link, logs in with leaked credentials, emails and
texts patients; each use raises an alert email naming the database. A
stolen account then pages through patient records in the EHR, whose IHE ATNA
audit trail reaches the listener: the canaries it opens raise alerts naming
the account, the third a critical "bulk access". Then someone deletes and
edits canaries and verify notices; retire keeps the edited row (reported),
which the operator deletes by hand: the table is then exactly as before.
Everything stays on 127.0.0.1 and in the folder.
"""

from __future__ import annotations

import csv
import hashlib
import os
import secrets
import sqlite3
import tempfile
from contextlib import closing
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from canary.contacts import ContactPoints, demo_contacts
from canary.errors import CanaryError
from canary.model import SourceSpec, TokenKind
from canary.tokens import normalise

Echo = Callable[[str], None]

DEMO_SOURCE = "dpi-demo"
DEMO_ESTABLISHMENT = "Clinique de démonstration"
BACKGROUND_PATIENTS = 1000
CANARIES = 12
DEMO_TWILIO_TOKEN_ENV = "CANARY_DEMO_TWILIO_AUTH_TOKEN"
SECURITY_TEAM = "rssi@clinique-demo.example"
STOLEN_ACCOUNT = "ide.nuit"
# One per use of the leak (DNS, link, login, email, SMS), then two unjustified reads and the burst.
EXPECTED_ALERTS = 8
ALERT_WAIT = 20.0  # seconds; alerts normally arrive well within one

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
    """Run the demo in ``directory`` (new or empty) or a new temporary folder.

    The folder is kept: the alert emails, the phishing mail and the leak it
    prints are there to be opened. Nothing in it is real.
    """
    if directory is None:
        workdir = Path(tempfile.mkdtemp(prefix="canary-demo-"))
    else:
        workdir = directory
        if workdir.is_dir() and any(workdir.iterdir()):
            raise CanaryError(f"{workdir} is not empty: give a new or empty folder to --dir")
        workdir.mkdir(parents=True, exist_ok=True)
    _run(workdir, echo)
    echo(f"everything is in {workdir} (remove it with: rm -r {workdir})")
    return workdir


def _run(workdir: Path, echo: Echo) -> None:
    from canary.planting import planter as planting
    from canary.planting import upkeep
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

        _watch_and_attack(workdir, config, registry, ehr_path, echo)

        deleted, edited = result.canary_ids[1], result.canary_ids[2]
        _tamper(ehr_path, registry.get_canary(deleted).identity.nir, registry.get_canary(edited).identity.nir)
        report = upkeep.verify(registry)
        problems = ", ".join(f"#{f.canary_id} {f.state}" for f in report.problems)
        echo(f"9. someone deletes one canary and edits another: verify reports {problems} (exit code 1)")

        records = upkeep.select_for_retire(registry, source=DEMO_SOURCE)
        retired = upkeep.retire(registry, records)
        for canary_id, _ in retired.altered:
            # Retire deletes a row only while every value planted is still there: the edited
            # row could now be a real patient's. The operator checks it and removes it by hand.
            echo(f"10. retire keeps canary #{canary_id}: its row was altered since planting (exit code 1); "
                 "checked by hand, the operator deletes it")
            _delete_by_hand(ehr_path, registry.get_canary(canary_id).identity.nir)
        restored = table_digest(ehr_path) == before
        echo(f"11. retired {len(retired.retired)} canaries: the patients table is "
             f"{'byte-for-byte as before planting' if restored else 'NOT as before (bug!)'}")
        if not restored:
            raise RuntimeError("demo: retire did not restore the table")


def _watch_and_attack(workdir: Path, config: Any, registry: Any, ehr_path: Path, echo: Echo) -> None:
    """Steps 5-8: the listener watches, the attacker uses the leak, the alerts arrive."""
    from dataclasses import replace

    from canary.demo import atna, attack
    from canary.demo.inbox import AlertInbox
    from listener.logs import configure_json_logging, remove_json_logging
    from listener.service import ListenerService

    token = secrets.token_hex(16)  # the demo Twilio account's auth token
    log_path = workdir / "listener.log"
    with AlertInbox(workdir / "alerts") as inbox, log_path.open("a", encoding="utf-8") as log_file:
        config = replace(config, raw=_listener_settings(workdir, inbox.port))
        handler = configure_json_logging(log_file)
        service = ListenerService(config, registry, environ={**os.environ, DEMO_TWILIO_TOKEN_ENV: token},
                                  index_refresh=1.0)
        try:
            service.start()
            ports = service.ports()
            echo(f"5. listener on 127.0.0.1: DNS {ports['dns']} (UDP, TCP), HTTP {ports['http']} (patient "
                 f"portal, SMS/voice webhooks), SMTP {ports['smtp']}; alerts are emailed to {SECURITY_TEAM} "
                 f"through a local mail server (port {inbox.port})")

            leak = workdir / "leak.csv"
            rows = _dump_csv(ehr_path, leak)
            victims = _leaked_rows(leak, registry)
            sources = sorted({registry.get_canary(cid).source for cid, _ in victims})
            echo(f"6. attacker dumps the table: {leak} ({rows} rows); {len(victims)} canaries in it "
                 f"name the source: {', '.join(sources) or 'none'}")
            if len(victims) < 5:
                raise RuntimeError("demo: fewer than 5 canaries in the leak")
            host = "127.0.0.1"
            echo("7. the attacker uses the leaked records (one patient each):")
            hostname = registry.get_canary(victims[0][0]).identity.hostname
            echo(f"   - resolves {hostname} (DNS over UDP): "
                 f"{attack.resolve(hostname, (host, ports['dns']))}")
            url = victims[1][1]["lien_portail"]
            echo(f"   - opens the portal link {url}: {attack.open_link(url, (host, ports['http']))}")
            row = victims[2][1]
            answer = attack.log_in(row["lien_portail"], row["portail_login"], row["portail_mdp"],
                                   (host, ports["http"]))
            echo(f"   - logs into the portal as {row['portail_login']} with the leaked password: {answer}; "
                 "the page refuses every login, the listener knows the password was right")
            email = victims[3][1]["email"]
            echo(f"   - emails {email} \"{attack.PHISHING_SUBJECT}\": {attack.phish(email, (host, ports['smtp']))}")
            number = normalise(TokenKind.PHONE, victims[4][1]["tel"])
            echo(f"   - texts {number}; the carrier posts a signed Twilio webhook: "
                 f"{attack.text_message(number, (host, ports['http']), token, service.hooks_path)}")

            canary_numbers = [row["ipp"] for _cid, row in victims[5:8]]
            paging = _ordinary_numbers(leak, {row["ipp"] for _cid, row in victims}, 24)
            opened = paging[:8] + canary_numbers[:1] + paging[8:16] + canary_numbers[1:2] + paging[16:] \
                + canary_numbers[2:]
            echo(f"   - with a stolen night-nurse account « {STOLEN_ACCOUNT} », pages through {len(opened)} "
                 f"patient records in the EHR, {len(canary_numbers)} of them canaries; the EHR's IHE ATNA audit "
                 f"trail reaches the listener over TCP syslog (port {ports['audit_syslog']}): "
                 f"{atna.snoop(STOLEN_ACCOUNT, opened, (host, ports['audit_syslog']))}")

            received = inbox.wait_for(EXPECTED_ALERTS, ALERT_WAIT)
            echo(f"8. the security team received {len(received)} alert emails:")
            for path, message in received:
                echo(f"   - {message['Subject']}")
            evidence = sorted((workdir / "smtp-evidence").glob("*.eml"))
            echo(f"   alert emails: {inbox.folder}/*.eml; the phishing mail, kept as evidence: "
                 f"{evidence[0] if evidence else '-'}")
            echo(f"   {len(registry.list_hits(source=DEMO_SOURCE))} hits recorded (`canary hits`), "
                 f"listener log (JSON lines): {log_path}")
            if len(received) < EXPECTED_ALERTS or not all(f"« {DEMO_SOURCE} »" in m["Subject"] for _, m in received):
                raise RuntimeError(f"demo: expected {EXPECTED_ALERTS} alerts naming {DEMO_SOURCE}, "
                                   f"got {len(received)}")
        finally:
            service.stop()
            remove_json_logging(handler)


def _listener_settings(workdir: Path, inbox_port: int) -> dict[str, Any]:
    """canary.toml tables of the demo listener: loopback, free ports, alerts to the local inbox."""
    return {
        "listener": {"dns": "127.0.0.1:0", "http": "127.0.0.1:0", "smtp": "127.0.0.1:0", "admin": "127.0.0.1:0",
                     "audit_syslog": "127.0.0.1:0", "smtp_evidence_dir": str(workdir / "smtp-evidence"),
                     "hit_journal": str(workdir / "hit-journal")},
        "access": {"sources": {"DPI-DEMO": DEMO_SOURCE}},  # the EHR's AuditSourceID is this database
        "alerts": {"poll_interval": "0.2s",
                   "email": {"host": "127.0.0.1", "port": inbox_port, "from": "canary@clinique-demo.example",
                             "to": [SECURITY_TEAM], "timeout": "5s"}},
        "telephony": {"twilio": {"auth_token_env": DEMO_TWILIO_TOKEN_ENV}},
    }


def _create_ehr(path: Path, spec: SourceSpec) -> None:
    """The demo EHR, filled with ordinary patients written by the same mapping."""
    from canary.identity.generator import IdentityGenerator
    from canary.planting.catalog import create_seeder

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
        # The mapping's rows, without the per-value column checks of plan(): the
        # canaries planted later are checked, and these thousand rows need not be.
        rows = [dict(seeder.mapping.rows(identity)[0].values)
                for identity in generator.generate_many(BACKGROUND_PATIENTS)]
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
    return {canary_id for canary_id, _ in _leaked_rows(leak, registry)}


def _leaked_rows(leak: Path, registry: Any) -> list[tuple[int, dict[str, str]]]:
    """(canary id, CSV row) of each row of the leaked file carrying a canary's email, in file order."""
    ours = registry.taken_values(TokenKind.EMAIL)  # one query, then set lookups
    rows = []
    with leak.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter=";"):
            email = row["email"].strip().lower()
            if email in ours:
                record = registry.find_token(email, TokenKind.EMAIL)
                if record is not None:
                    rows.append((record.id, row))
    return rows


def _ordinary_numbers(leak: Path, canaries: set[str], count: int) -> list[str]:
    """Patient numbers (IPP) of ordinary patients of the leaked table, in its order."""
    with leak.open(encoding="utf-8", newline="") as fh:
        numbers = [row["ipp"] for row in csv.DictReader(fh, delimiter=";") if row["ipp"] not in canaries]
    return numbers[:count]


def _delete_by_hand(ehr: Path, nir: str) -> None:
    with closing(sqlite3.connect(ehr)) as conn, conn:
        conn.execute("DELETE FROM patients WHERE matricule = ?", (nir,))


def _tamper(ehr: Path, delete_nir: str, edit_nir: str) -> None:
    with closing(sqlite3.connect(ehr)) as conn, conn:
        conn.execute("DELETE FROM patients WHERE matricule = ?", (delete_nir,))
        conn.execute("UPDATE patients SET tel = '06 00 00 00 00' WHERE matricule = ?", (edit_nir,))
