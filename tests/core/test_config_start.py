"""Reading a configuration of core settings only does not import every part's module."""

from __future__ import annotations

import subprocess
import sys

import pytest

from canary import config
from canary.errors import ConfigError

CORE = {"registry": {"url": "sqlite:///r.db"},
        "contacts": {"email_domains": ["mel-famille.fr"], "dns_zone": "rdv.fr", "portal_url": "https://p.fr/a/",
                     "phone_pool": ["+33607000000"]}}


def test_core_only_configs_skip_the_other_parts_settings():
    assert config._only_core(CORE)
    assert not config._only_core(CORE | {"listener": {"bind": "0.0.0.0"}})
    assert not config._only_core({"registry": {"nope": 1}})
    assert not config._only_core({"registry": "sqlite:///r.db"})


def test_unknown_settings_are_still_refused():
    with pytest.raises(ConfigError, match="unknown setting registry.nope"):
        config.parse_config({"registry": {"url": "sqlite:///r.db", "nope": 1}, "contacts": CORE["contacts"]}, path=None)
    with pytest.raises(ConfigError, match="unknown table"):
        config.parse_config(CORE | {"nope": {}}, path=None)


def test_a_core_only_config_does_not_import_the_listener():
    code = ("import sys; from canary.config import parse_config; "
            f"parse_config({CORE!r}, path=None); print('flask' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
