"""Database URL helpers: passwords never shown, sources resolved, SQLite paths made absolute."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary.dsn import absolutize_sqlite, has_password, is_sqlite, redact, resolve_url, sqlite_path
from canary.errors import ConfigError
from canary.model import SourceSpec


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql+psycopg://canary:s3cret@db.example:5432/registry",
         "postgresql+psycopg://canary:***@db.example:5432/registry"),
        ("mysql+pymysql://root:p%40ss%3Aword@127.0.0.1/lis", "mysql+pymysql://root:***@127.0.0.1/lis"),
        ("postgresql://db.example/registry?password=s3cret&sslmode=require",
         "postgresql://db.example/registry?password=***&sslmode=require"),
        ("postgresql://canary@db.example/registry", "postgresql://canary@db.example/registry"),
        ("sqlite:////var/lib/canary/registry.db", "sqlite:////var/lib/canary/registry.db"),
        ("https://api:tok3n@fhir.example/R4", "https://api:***@fhir.example/R4"),
    ],
)
def test_redact_hides_passwords(url, expected):
    assert redact(url) == expected


@pytest.mark.parametrize("junk", ["", "not a url", "postgresql://u:s3cret@host:port/db", None, 42])
def test_redact_never_raises_on_junk(junk):
    assert redact(junk) == "<unparseable URL>"


def test_redact_of_junk_with_password_does_not_leak_it():
    assert "s3cret" not in redact("postgresql://u:s3cret@host:notaport/db")


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://u:s3cret@h/db", True),
        ("postgresql://h/db?password=s3cret", True),
        ("postgresql://u@h/db", False),
        ("sqlite:///registry.db", False),
        # Unparseable (bad port) but visibly carrying a password: say so.
        ("postgresql://u:s3cret@h:notaport/db", True),
        ("junk", False),
    ],
)
def test_has_password(url, expected):
    assert has_password(url) is expected


def test_is_sqlite():
    assert is_sqlite("sqlite:///x.db")
    assert is_sqlite("sqlite+pysqlite:///x.db")
    assert is_sqlite("sqlite://")
    assert not is_sqlite("postgresql://h/db")
    assert not is_sqlite("junk")


def test_sqlite_path():
    assert sqlite_path("sqlite:////var/lib/r.db") == Path("/var/lib/r.db")
    assert sqlite_path("sqlite:///r.db") == Path("r.db")
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql://h/db") is None


def test_absolutize_sqlite_resolves_relative_paths_against_base_dir(tmp_path):
    assert absolutize_sqlite("sqlite:///registry.db", tmp_path) == f"sqlite:///{tmp_path}/registry.db"
    assert absolutize_sqlite("sqlite:///data/r.db", str(tmp_path)) == f"sqlite:///{tmp_path}/data/r.db"


def test_absolutize_sqlite_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert absolutize_sqlite("sqlite:///~/r.db", "/elsewhere") == f"sqlite:///{tmp_path}/r.db"


@pytest.mark.parametrize(
    "url",
    ["sqlite:////abs/registry.db", "sqlite://", "sqlite:///:memory:",
     "postgresql://u:s3cret@h/db", "mysql+pymysql://root@h/lis"],
)
def test_absolutize_sqlite_leaves_other_urls_alone(url):
    assert absolutize_sqlite(url, "/base") == url


def test_resolve_url_prefers_environment_variable():
    spec = SourceSpec(name="lab", seeder="sql", url_env="LAB_URL", url="mysql://ro@h/lis")
    assert resolve_url(spec, {"LAB_URL": "mysql://rw:pw@h/lis"}) == "mysql://rw:pw@h/lis"


def test_resolve_url_falls_back_to_stored_url():
    spec = SourceSpec(name="lab", seeder="sql", url="mysql://ro@h/lis")
    assert resolve_url(spec, {}) == "mysql://ro@h/lis"


def test_resolve_url_missing_environment_variable_says_which():
    spec = SourceSpec(name="lab", seeder="sql", url_env="LIS_URL")
    with pytest.raises(ConfigError) as err:
        resolve_url(spec, {"OTHER": "x"})
    assert str(err.value) == "source 'lab': environment variable LIS_URL is not set"


def test_resolve_url_without_any_url():
    with pytest.raises(ConfigError, match="source 'lab' has no database URL"):
        resolve_url(SourceSpec(name="lab", seeder="sql"), {})
