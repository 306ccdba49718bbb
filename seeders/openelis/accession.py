"""The next accession number, in the site's own numbering.

``site_information.acessionFormat`` picks the generator
(``AccessionNumberValidatorFactory.getConfiguredMainGenerator``). With the
default ``SITEYEARNUM`` (``SiteYearAccessionValidator.incrementAccessionNumber``)
a number is the site prefix ("Accession number prefix"), the two-digit year
and a 13-digit counter, the counter kept per prefix+year in
``accession_number_info`` (type ``SITEYEARNUM``, ``AccessionDAOImpl.getNextNumberIncrement``:
``UPDATE ... SET cur_val = cur_val + 1 ... RETURNING cur_val``). Other
formats, or a site without counters, continue the newest numbers the site
used (same prefix and width).

The seeder reads the counter and never moves it (it changes no row it did
not add): the application's ``getNextAvailableAccessionNumber`` loops until it
finds a number no sample has, so it steps over the canary's number itself.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from seeders.sql.blend import next_code
from seeders.sql.target import SqlTarget

SITEYEARNUM = "SITEYEARNUM"
COUNTER_WIDTH = 13


def _setting(conn: sa.Connection, target: SqlTarget, name: str) -> str | None:
    info = target.table("site_information")
    if info is None:
        return None
    value = conn.execute(sa.select(info.c.value).where(sa.func.lower(info.c.name) == name.lower())).scalar()
    return None if value is None else str(value).strip()


def next_accession(target: SqlTarget, when: datetime, newest: list[str]) -> str:
    """The number the site's generator gives next on ``when``'s year, skipping numbers in use."""
    sample = target.table("sample")
    with target.engine.connect() as conn:
        fmt = (_setting(conn, target, "acessionFormat") or SITEYEARNUM).upper()
        prefix = _setting(conn, target, "Accession number prefix") or ""
        if fmt == SITEYEARNUM and prefix:
            head = f"{prefix}{when.year % 100:02d}"
            counter = 0
            info = target.table("accession_number_info")
            if info is not None:
                counter = conn.execute(sa.select(info.c.cur_val).where(
                    info.c.prefix == head, info.c.type == SITEYEARNUM)).scalar() or 0
            used = conn.execute(sa.select(sa.func.max(sample.c.accession_number)).where(
                sample.c.accession_number.like(f"{head}%"),
                sa.func.length(sample.c.accession_number) == len(head) + COUNTER_WIDTH)).scalar()
            if used and used[len(head):].isdigit():
                counter = max(counter, int(used[len(head):]))
            candidate = f"{head}{counter + 1:0{COUNTER_WIDTH}d}"
        else:
            candidate = next_code(newest) or f"{when.year}000001"
        while conn.execute(sa.select(sample.c.id).where(sample.c.accession_number == candidate)).first():
            candidate = next_code([candidate])
    return candidate
