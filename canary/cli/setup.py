"""`canary init`: a commented canary.toml and an initialised registry."""

from __future__ import annotations

import os

from importlib import resources
from pathlib import Path

from canary.config import DEFAULT_CONFIG_NAME, load_config
from canary.errors import ConfigError


def config_template() -> str:
    return resources.files("canary").joinpath("templates/canary.toml").read_text(encoding="utf-8")


def init_workspace(directory: Path) -> Path:
    """Write DIR/canary.toml (never overwriting one) and create its registry."""
    from canary.registry import Registry

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create {directory}: {err.strerror}") from None
    path = directory / DEFAULT_CONFIG_NAME
    if path.exists():
        # Keep the admin's file; still make sure its registry exists.
        config = load_config(path)
    else:
        try:  # 0600 from the first byte: it will hold the admin password hash
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(config_template())
        except OSError as err:
            raise ConfigError(f"cannot write {path}: {err.strerror}") from None
        config = load_config(path)
    Registry.open(config.registry_url, create=True).close()
    return path
