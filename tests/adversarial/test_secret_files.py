"""`canary init` writes nothing another user of the host may read."""

from __future__ import annotations

import os
import stat

from click.testing import CliRunner

from canary.cli.main import cli


def test_init_writes_the_config_and_registry_0600_whatever_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        result = CliRunner().invoke(cli, ["init", str(tmp_path / "ws")])
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    for name in ("canary.toml", "canary-registry.db"):
        assert stat.S_IMODE((tmp_path / "ws" / name).stat().st_mode) == 0o600, name
