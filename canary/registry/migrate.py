"""Registry schema versions, through Alembic run from code (no alembic.ini).

The migration scripts ship inside the package (``canary/registry/migrations``).
"""

from __future__ import annotations

import enum
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from canary.errors import RegistryError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"


class SchemaState(enum.Enum):
    EMPTY = "empty"  # no registry tables and no version: never initialised
    FOREIGN = "foreign"  # unversioned but holds tables: not ours
    BEHIND = "behind"  # a known older revision
    CURRENT = "current"
    AHEAD = "ahead"  # a revision this version of canary does not know


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    # ConfigParser interpolation: a "%" in the install path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revisions() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


def schema_state(connection: sa.Connection) -> tuple[SchemaState, tuple[str, ...]]:
    """Where the database stands against the shipped migrations, and its revisions."""
    current = tuple(MigrationContext.configure(connection).get_current_heads())
    if not current:
        tables = set(sa.inspect(connection).get_table_names()) - {VERSION_TABLE}
        return (SchemaState.FOREIGN if tables else SchemaState.EMPTY), current
    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    if set(current) == heads:
        return SchemaState.CURRENT, current
    known = {revision.revision for revision in script.walk_revisions()}
    if not set(current) <= known:
        return SchemaState.AHEAD, current
    return SchemaState.BEHIND, current


def upgrade(engine: sa.Engine, url_redacted: str) -> None:
    """Create or upgrade the schema to head, in one transaction where the engine allows."""
    with engine.connect() as connection:
        state, current = schema_state(connection)
        connection.rollback()  # end the inspection transaction before PRAGMAs / BEGIN
        if state is SchemaState.FOREIGN:
            raise RegistryError(
                f"{url_redacted} already holds tables that are not a canary registry: "
                "give the registry its own database"
            )
        if state is SchemaState.AHEAD:
            raise RegistryError(_ahead_message(url_redacted, current))
        if state is SchemaState.CURRENT:
            return
        sqlite = engine.dialect.name == "sqlite"
        raw = connection.connection.driver_connection if sqlite else None
        if raw is not None:
            # Table rebuilds in SQLite batch migrations trip over enforced foreign
            # keys; the pragma is ignored inside a transaction, so set it before.
            raw.execute("PRAGMA foreign_keys = OFF")
        try:
            connection.execution_options(canary_write=True)
            with connection.begin():
                command.upgrade(alembic_config(connection), "head")
                if raw is not None:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RegistryError(
                            f"registry upgrade at {url_redacted} broke {len(broken)} "
                            "references: nothing was changed; please report this bug"
                        )
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys = ON")


def _ahead_message(url_redacted: str, current: tuple[str, ...]) -> str:
    return (
        f"registry at {url_redacted} has schema revision {', '.join(current)}, newer than "
        "this version of canary knows: upgrade canary"
    )


def require_current(connection: sa.Connection, url_redacted: str, *,
                    behind_ok: bool = False) -> None:
    """Raise RegistryError saying what to run unless the schema is at head."""
    state, current = schema_state(connection)
    if state is SchemaState.CURRENT or (state is SchemaState.BEHIND and behind_ok):
        return
    if state is SchemaState.EMPTY:
        raise RegistryError(f"registry at {url_redacted} is not initialised: run `canary init`")
    if state is SchemaState.FOREIGN:
        raise RegistryError(
            f"{url_redacted} holds tables but no canary registry: check the registry URL"
        )
    if state is SchemaState.BEHIND:
        raise RegistryError(
            f"registry at {url_redacted} is at an older schema: run `canary upgrade`"
        )
    raise RegistryError(_ahead_message(url_redacted, current))
