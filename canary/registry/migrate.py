"""Registry schema versions, through Alembic run from code (no alembic.ini).

The migration scripts ship inside the package (``canary/registry/migrations``).
Alembic is imported only when a schema is not current: importing it (with Mako
and Pygments behind it) took about 0.3 s of every command's start, a sixth of a
500 MB ``canary scan``. A current schema is recognised from the revision lines
of the migration files and the version table (``_is_current``).
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from canary.errors import RegistryError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"


class SchemaState(enum.Enum):
    EMPTY = "empty"  # no registry tables and no version: never initialised
    FOREIGN = "foreign"  # unversioned but holds tables: not ours
    BEHIND = "behind"  # a known older revision
    CURRENT = "current"
    AHEAD = "ahead"  # a revision this version of canary does not know


def alembic_config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    # ConfigParser interpolation: a "%" in the install path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revisions() -> tuple[str, ...]:
    from alembic.script import ScriptDirectory

    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


def schema_state(connection: sa.Connection) -> tuple[SchemaState, tuple[str, ...]]:
    """Where the database stands against the shipped migrations, and its revisions."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

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
    from alembic import command

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
    if _is_current(connection):
        return
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


# "revision = '0002'", "down_revision: str | None = '0001'", a merge's tuple of parents.
_REVISION_LINE = re.compile(r"""^(down_)?revision\s*(?::[^=\n]*)?=([^\n]*)$""", re.M)
_QUOTED = re.compile(r"""["']([^"'\n]+)["']""")


def quick_heads() -> frozenset[str] | None:
    """Head revisions read from the ``revision``/``down_revision`` lines of the migration
    files, without Alembic; None when a file does not hold exactly one of each."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        lines = _REVISION_LINE.findall(path.read_text(encoding="utf-8"))
        own = [value for down, value in lines if not down]
        down = [value for is_down, value in lines if is_down]
        if len(own) != 1 or len(down) != 1 or len(_QUOTED.findall(own[0])) != 1:
            return None
        revisions.add(_QUOTED.findall(own[0])[0])
        parents.update(_QUOTED.findall(down[0]))
    heads = revisions - parents
    return frozenset(heads) if heads else None


def _is_current(connection: sa.Connection) -> bool:
    """Whether the version table holds exactly the shipped heads (any doubt: False, and
    ``schema_state`` asks Alembic)."""
    heads = quick_heads()
    if heads is None or not sa.inspect(connection).has_table(VERSION_TABLE):
        return False
    current = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return set(current) == heads
