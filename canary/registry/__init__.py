"""The registry: which target database got which canary, and which contact points are ours.

Only this package talks to the registry database (SQLite by default,
PostgreSQL supported); its schema is managed by the Alembic migrations shipped
in ``canary/registry/migrations``. See ``schema.py`` for the tables and the
room left for hits and alerts.
"""

from canary.registry.records import Batch, CanaryRecord, SourceSummary
from canary.registry.store import Registry, TokenTaken

__all__ = ["Batch", "CanaryRecord", "Registry", "SourceSummary", "TokenTaken"]
