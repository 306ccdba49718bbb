"""Alembic environment for the registry.

Canary runs migrations itself (``Registry.open(url, create=True)``,
``Registry.upgrade()``), handing over an open connection in
``config.attributes["connection"]`` inside a transaction it owns. A developer
autogenerating a new revision may instead set ``sqlalchemy.url`` on a Config
built with ``canary.registry.migrate.alembic_config()``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from canary.registry.schema import metadata

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: future migrations use batch mode.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("the canary registry does not support offline (--sql) migrations")
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("run registry migrations through canary (`canary init` / `canary upgrade`)")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


_main()
