"""The interface every seeder implements, for seeder authors.

It is defined in the core (``canary.planting.seeder``), which drives seeders
without importing any of them; adapters, built-in or third-party, import it
from here: ``from seeders.base import Seeder, SeederOption, PlannedRow``.
"""

from canary.planting.seeder import PlannedRow, Seeder, SeederOption

__all__ = ["PlannedRow", "Seeder", "SeederOption"]
