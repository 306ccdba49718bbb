"""Shared fixtures: real MariaDB/PostgreSQL databases, created fresh per test.

Database tests read CANARY_TEST_MARIADB_URL / CANARY_TEST_POSTGRES_URL (server
URLs, e.g. mysql+pymysql://root@127.0.0.1:3306/test). When a URL is absent or
the server is down the test is skipped with the reason, unless
CANARY_REQUIRE_DB=1 (set by .ci/run), which turns that skip into a failure so
CI can never go green without running them.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url


def _server_url(env: str, what: str) -> str:
    url = os.environ.get(env)
    required = os.environ.get("CANARY_REQUIRE_DB") == "1"
    if not url:
        message = f"{what} tests need {env} (e.g. set by .ci/run)"
        if required:
            pytest.fail(message + " and CANARY_REQUIRE_DB=1 forbids skipping")
        pytest.skip(message)
    return url


def _fresh_database(server_url: str, what: str):
    required = os.environ.get("CANARY_REQUIRE_DB") == "1"
    name = "canary_t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as err:
        admin.dispose()
        message = f"{what} server unreachable: {err.orig!r}"
        if required:
            pytest.fail(message + " (CANARY_REQUIRE_DB=1)")
        pytest.skip(message)
    url = make_url(server_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            if admin.dialect.name == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture
def mariadb_url():
    """URL of a new, empty MariaDB database, dropped after the test."""
    yield from _fresh_database(_server_url("CANARY_TEST_MARIADB_URL", "MariaDB"), "MariaDB")


@pytest.fixture
def postgres_url():
    """URL of a new, empty PostgreSQL database, dropped after the test."""
    yield from _fresh_database(_server_url("CANARY_TEST_POSTGRES_URL", "PostgreSQL"), "PostgreSQL")


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'target.db'}"


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def any_db_url(request):
    """Each test using this runs once per engine."""
    return request.getfixturevalue(f"{request.param}_url")
