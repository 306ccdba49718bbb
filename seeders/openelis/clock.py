"""Timestamps as OpenELIS's Java side takes them: one millisecond reading per row.

Hibernate versions every ``lastupdated`` of the patient and sample tables
(``<version name="lastupdated" type="timestamp">`` in ``Patient.hbm.xml``,
``Person.hbm.xml``, ``Sample.hbm.xml``...): on insert ``TimestampType.seed()``
= ``new Timestamp(System.currentTimeMillis())``, so values have millisecond
precision (``.123000`` in a ``timestamp(6)`` column). ``BaseDAOImpl.insert``
flushes each entity right after ``persist``, so the rows of one save each get
their own, increasing reading a few milliseconds apart. A Python
``datetime.now()`` has microseconds: ``extract(microseconds FROM lastupdated)
% 1000 <> 0`` would list exactly the canaries.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

# Milliseconds between two flushes of one save (Hibernate insert + flush on a local database).
FLUSH_GAP_MS = (1, 9)


def millis(moment: datetime) -> datetime:
    """``moment`` cut to the millisecond, as ``System.currentTimeMillis()`` reads it."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class SaveClock:
    """Successive ``currentTimeMillis()`` readings of one save, starting at ``start``."""

    def __init__(self, start: datetime, rnd: random.Random) -> None:
        self._now = millis(start)
        self._rnd = rnd
        self._first = True

    def reading(self) -> datetime:
        if not self._first:
            self._now += timedelta(milliseconds=self._rnd.randint(*FLUSH_GAP_MS))
        self._first = False
        return self._now
