"""What the `canary` commands share, in every cli_*.py module: the --json flag and the progress bar.

A module of its own so that canary/cli/main.py and the command modules it registers
import it without importing one another.
"""

from __future__ import annotations

import sys

import click


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
