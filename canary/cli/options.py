"""What the `canary` commands share: the group that turns errors into one line, the Env,
the --json flag and the progress bar.

A module of its own so that canary/cli/main.py and the command modules it registers
import it without importing one another.
"""

from __future__ import annotations

import functools
import sys

import click

from canary.errors import CanaryError, ConfigError


def json_flag(doc: str = "docs/cli.md"):
    """The --json flag (``as_json``); ``doc`` names where its output is described."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print JSON (stable, see {doc}).")


json_option = json_flag()


def progress_bar(length: int, label: str):
    """A progress bar on a terminal; a silent no-op otherwise."""
    show = sys.stderr.isatty()
    return click.progressbar(length=length, label=label, file=sys.stderr) if show else _NoBar()


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int) -> None:
        pass


class CanaryGroup(click.Group):
    """Turns user errors into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CanaryError as err:
            click.echo(f"canary: error: {err}", err=True)
            ctx.exit(err.exit_code)


class Env:
    """Lazily loaded configuration and registry shared by the commands."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._registry = None

    @functools.cached_property
    def config(self):
        from canary.config import find_config_path, load_config

        path = find_config_path(self.config_path)
        if path is None:
            raise ConfigError("no configuration found: run `canary init` or pass --config / set CANARY_CONFIG")
        return load_config(path)

    @property
    def registry(self):
        if self._registry is None:
            from canary.registry import Registry

            self._registry = Registry.open(self.config.registry_url)
        return self._registry

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()


pass_env = click.make_pass_decorator(Env)
