"""`canary admin hash-password`: the password of the admin dashboard (docs/admin.md).

Register with ``cli.add_command(admin)`` in canary/cli/main.py. User errors are
CanaryError, turned into one line by the top-level group.
"""

from __future__ import annotations

import sys

import click

from canary.errors import CanaryError

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further


@click.group("admin")
def admin() -> None:
    """The admin dashboard served by `canary listen` (see docs/admin.md)."""


@admin.command("hash-password")
def hash_password() -> None:
    """Print the bcrypt hash of a new dashboard password, for [admin] password_hash.

    Asks twice without echo on a terminal; otherwise reads one line from stdin.
    """
    stdin = sys.stdin
    if stdin.isatty():
        password = click.prompt("Dashboard password", hide_input=True, confirmation_prompt="Again",
                                err=True)
    else:
        password = stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_CHARS:
        raise CanaryError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise CanaryError(f"the password must fit in {MAX_PASSWORD_BYTES} bytes (bcrypt ignores the rest)")
    from listener.admin.auth import hash_password as make_hash

    click.echo(make_hash(password))
    if stdin.isatty():
        click.echo("put it in canary.toml as [admin] password_hash = \"...\", then restart canary listen",
                   err=True)
