"""The seeder registry: built-ins and third-party seeders through the same entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from canary.planting import catalog
from canary.errors import ConfigError
from canary.model import SourceSpec
from canary.planting.catalog import create_seeder
from canary.planting.catalog import get_seeder_class
from canary.planting.catalog import seeder_names
from canary.planting.seeder import Seeder
from seeders.sql.seeder import SqlSeeder

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = '''
from canary.planting.seeder import Seeder, SeederOption

class FakeSeeder(Seeder):
    name = "fake"
    summary = "A test seeder."
    options = (SeederOption("ward", "Ward to plant into", default="A"),)
    def open(self): self.opened = True
    def plan(self, identity): return []
    def collides(self, identity): return False
    def plant(self, identity): raise NotImplementedError
    def locate(self, identity): return None
    def verify(self, identity, placement): raise NotImplementedError
    def retire(self, placement): pass

class Misnamed(FakeSeeder):
    name = "other"

NotASeeder = object
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """An installed third-party distribution declaring seeders in ``canary.seeders``."""
    (tmp_path / "fake_canary_plugin.py").write_text(PLUGIN, encoding="utf-8")
    dist = tmp_path / "fake_canary_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-canary-plugin\nVersion: 1.0\n",
                                   encoding="utf-8")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""\
        [canary.seeders]
        fake = fake_canary_plugin:FakeSeeder
        misnamed = fake_canary_plugin:Misnamed
        notaseeder = fake_canary_plugin:NotASeeder
        broken = fake_canary_plugin_missing:Seeder
        """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("fake_canary_plugin", None)


def test_builtin_sql_is_found_without_installation():
    assert "sql" in seeder_names()
    assert get_seeder_class("sql") is SqlSeeder
    assert SqlSeeder.name == "sql" and SqlSeeder.needs_mapping


def test_unknown_seeder_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"^unknown seeder 'oracle' \(known: .*sql.*\)$"):
        get_seeder_class("oracle")


def test_listing_the_seeders_imports_no_seeder():
    code = ("import sys; from canary.planting import catalog; catalog.seeder_names(); "
            "print(sorted(m for m in sys.modules if m.startswith('seeders')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_third_party_seeder_registers_through_the_entry_point_group(plugin):
    assert {"fake", "sql"} <= set(seeder_names())
    cls = get_seeder_class("fake")
    assert issubclass(cls, Seeder) and cls.__name__ == "FakeSeeder"
    seeder = create_seeder(SourceSpec(name="lab", seeder="fake"), "sqlite://")
    assert isinstance(seeder, cls) and seeder.source.name == "lab"
    assert seeder.option("ward") == "A"


@pytest.mark.parametrize("name,expected", [
    ("misnamed", "calls itself 'other'"),
    ("notaseeder", "is not a seeders.base.Seeder subclass"),
    ("broken", "cannot be loaded: No module named 'fake_canary_plugin_missing'"),
])
def test_bad_plugins_are_config_errors(plugin, name, expected):
    with pytest.raises(ConfigError, match=expected) as err:
        get_seeder_class(name)
    assert "\n" not in str(err.value)


def test_create_seeder_requires_a_mapping_when_the_seeder_needs_one():
    with pytest.raises(ConfigError, match="source 'lab': seeder 'sql' needs a mapping file"):
        create_seeder(SourceSpec(name="lab", seeder="sql"), "sqlite://")
    seeder = create_seeder(SourceSpec(name="lab", seeder="sql", mapping="m.toml"), "sqlite://")
    assert isinstance(seeder, SqlSeeder)


def test_fallback_matches_the_declared_entry_points():
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["canary.seeders"]
    assert declared == catalog.BUILTIN_SEEDERS
