"""The interface every seeder implements, for seeder authors.

It is defined in the core (``canary.planting.seeder``), which drives seeders
without importing any of them; adapters, built-in or third-party, import it
from here: ``from seeders.base import Seeder, SeederOption, PlannedRow`` (and
``AuditPatient``, for a seeder that reads its own patients for the audit).
"""

from canary.planting.seeder import AuditPatient, PlannedRow, Seeder, SeederOption

__all__ = ["AuditPatient", "PlannedRow", "Seeder", "SeederOption"]
