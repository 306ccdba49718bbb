"""Real GNU Health databases for the tests: the 5.0.6 and 4.4.1 dumps, and patients made by GNU Health itself.

* 5.0.6: ``gnuhealth-5.0.6.sql`` of the shared real schemas (CANARY_REAL_SCHEMAS).
* 4.4.1: a dump made the same way (``pip install gnuhealth==4.4.1``,
  ``trytond-admin``, ``trytond_import_countries``, ``pg_dump``), at the path in
  CANARY_GNUHEALTH44_SCHEMA; .ci/run builds it into its cache when it can.
* The application: ``make_patients`` runs tests/support/gnuhealth_make_patients.py
  with the Python of a GNU Health 5.0.6 virtual environment
  (CANARY_GNUHEALTH_PYTHON, or CANARY_GNUHEALTH44_PYTHON for 4.4.1; .ci/run
  creates the 5.0.6 one), so the rows come from GNU Health's own code.

Each loader gives a fresh database for the test module (support.app_databases).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from support.app_databases import SCHEMAS, load_pgdump
from support.needs import missing

DUMP_50 = SCHEMAS / "gnuhealth-5.0.6.sql"
MAKE_PATIENTS = Path(__file__).with_name("gnuhealth_make_patients.py")
# Making patients through Tryton: start-up plus ~40 ms a patient; generous for a busy CI machine.
_MAKE_TIMEOUT = 300


def dump_path(version: str) -> Path:
    """The schema dump of ``version`` ("5.0" or "4.4"); skips (fails in CI) when it is not there."""
    if version == "5.0":
        if not DUMP_50.is_file():
            missing("schemas", f"real schema {DUMP_50.name} not found in {SCHEMAS} (set CANARY_REAL_SCHEMAS)")
        return DUMP_50
    path = os.environ.get("CANARY_GNUHEALTH44_SCHEMA", "")
    if not path or not Path(path).is_file():
        missing("gnuhealth44", "no GNU Health 4.4.1 schema dump: set CANARY_GNUHEALTH44_SCHEMA to one "
                "(.ci/run builds it with trytond-admin into its cache)")
    return Path(path)


def application_python(version: str) -> str:
    """The python of a GNU Health virtual environment of ``version``; skips (fails in CI) without one."""
    env = "CANARY_GNUHEALTH_PYTHON" if version == "5.0" else "CANARY_GNUHEALTH44_PYTHON"
    python = os.environ.get(env, "")
    if not python or not os.access(python, os.X_OK):
        missing("gnuhealth" if version == "5.0" else "gnuhealth44",
                f"no GNU Health {version} to create reference patients: set {env} to the python of a "
                "virtual environment with gnuhealth and psycopg2-binary installed (.ci/run does)")
    return python


def load(url: str, version: str, tmp: Path) -> None:
    """Load the dump of ``version`` into the (empty) database of ``url``."""
    path = dump_path(version)
    text = path.read_text(encoding="utf-8")
    if "\n\\restrict " in text:
        # pg_dump 17.6 and later frame the dump in psql meta-commands (\restrict KEY ... \unrestrict KEY)
        # that only psql understands; they carry no schema.
        path = tmp / path.name
        path.write_text("".join(line for line in text.splitlines(keepends=True)
                                if not line.startswith(("\\restrict ", "\\unrestrict "))), encoding="utf-8")
    load_pgdump(url, path)


def make_patients(python: str, url: str, tmp: Path, count: int, seed: int, *options: str) -> dict:
    """Create ``count`` patients through GNU Health's own ORM in the database of ``url``; its JSON report."""
    parsed = make_url(url)
    server = f"postgresql://{parsed.username or 'postgres'}@{parsed.host or '127.0.0.1'}:{parsed.port or 5432}/"
    attachments = tmp / "attachments"
    attachments.mkdir(exist_ok=True)
    config = tmp / "trytond.conf"
    config.write_text(f"[database]\nuri = {server}\npath = {attachments}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TRYTON"))}
    if parsed.password:
        env["PGPASSWORD"] = parsed.password  # libpq reads it; it never appears on a command line
    done = subprocess.run([python, str(MAKE_PATIENTS), str(config), parsed.database, str(count), str(seed),
                           *options], capture_output=True, text=True, timeout=_MAKE_TIMEOUT, env=env, cwd=tmp)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise AssertionError(f"GNU Health failed to create the reference patients:\n{tail}")
    return json.loads(done.stdout)


def rows(url: str, sql: str, **params) -> list[dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()
