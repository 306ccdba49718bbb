"""Creation times as OpenMRS stamps them: the server's clock, one stamp per row.

``AuditableInterceptor.onSave`` (openmrs-core ``api/.../db/hibernate/
AuditableInterceptor.java``, ``getPropertyValuesToSave``) gives each entity
of a save its own ``new Date()`` when Hibernate flushes it, and
``PatientSaveHandler`` stamps the patient row apart: the rows of one
registration are a few milliseconds apart, now and then across a second
boundary, in the order they are flushed. The clock is the OpenMRS server's,
not the seeder machine's: the database's ``NOW(3)`` stands for it (the two
run side by side and keep the same time zone; the seeder's host may not).
The ``DATETIME`` columns keep whole seconds, and how a millisecond value is
cut down (rounded by MySQL, truncated by MariaDB) is the server's business:
the stamps are passed through the server's own ``CAST``, so the value
recorded for ``verify`` is the value stored.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Iterator

import sqlalchemy as sa

from seeders.sql.target import SqlTarget

# Milliseconds between two entities of one flush: Hibernate saves them one after the other.
FLUSH_GAP_MS = (0, 4)
STAMPS_PER_PATIENT = 32  # more than the rows of one patient (idgen log, person ... identifiers, footprint)


def server_stamps(target: SqlTarget, rnd: random.Random | None = None,
                  count: int = STAMPS_PER_PATIENT) -> Iterator[datetime]:
    """Successive creation stamps from the database's clock, as its DATETIME columns store them."""
    rnd = rnd or random.Random()
    person = target.table("person")
    precision = getattr(person.c.date_created.type, "fsp", None) or 0
    with target.engine.connect() as conn:
        now = conn.execute(sa.text("SELECT NOW(3)")).scalar_one()
        raw, moment = [], now
        for _ in range(count):
            raw.append(moment)
            moment += timedelta(milliseconds=rnd.randint(*FLUSH_GAP_MS))
        casts = ", ".join(f"CAST(:t{i} AS DATETIME({precision}))" for i in range(count))
        stored = conn.execute(sa.text(f"SELECT {casts}"),
                              {f"t{i}": value.isoformat(sep=" ", timespec="milliseconds")
                               for i, value in enumerate(raw)}).one()
    return iter(list(stored))


def local_stamps(now: datetime | None = None) -> Iterator[datetime]:
    """Stamps for a dry run or a lookup, where nothing is written: the seeder's clock, to the second."""
    moment = (now or datetime.now()).replace(microsecond=0)
    while True:
        yield moment
