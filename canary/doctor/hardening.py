"""`canary doctor`'s checks of what an attacker on the same host or the network could use:
files holding secrets readable by others, and a descriptor limit too low for the listener.

Each is a generator of ``Check`` lines run by ``canary.doctor.run.run_checks``
(independent, never raising, writing nothing).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Iterator, Mapping

from canary.doctor.checks import FAIL, OK, WARN, Check, Context, Probe



def secret_files(config: Any) -> list[Path]:
    """Files and folders of an installation that only their owner may read."""
    from canary.dsn import sqlite_path
    from canary.hits.journal import journal_settings
    from listener.telephony import HOOKS_PATH_FILE

    table: Mapping[str, Any] = config.raw.get("listener") or {}
    base = config.base_dir
    paths: list[Path] = []
    if config.path is not None:
        paths.append(Path(config.path))  # the admin password hash, setting names
    registry = sqlite_path(config.registry_url)
    if registry is not None:
        paths.append(registry)  # which patients are fake
    try:
        journal = journal_settings(table, base)[0]
        paths += [journal, journal.with_name(journal.name + ".rejected"), journal.parent / HOOKS_PATH_FILE]
    except Exception:  # a bad setting is the config check's to report
        pass
    folder = table.get("smtp_evidence_dir", "smtp-evidence")
    if isinstance(folder, str) and folder:
        paths.append(base / folder)  # mail sent to canaries
    return paths


def check_files(ctx: Context) -> Iterator[Check]:
    config = ctx.config
    exposed, checked = [], 0
    for path in secret_files(config):
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            continue
        except OSError as err:
            yield Check("files", WARN, f"cannot check {path}: {err.strerror}")
            continue
        checked += 1
        # Others: a group read is how the deploy layout lets the service read root's /etc/canary files.
        if stat.S_IMODE(mode) & stat.S_IRWXO:
            exposed.append((path, stat.S_IMODE(mode), stat.S_ISDIR(mode)))
    for path, mode, is_dir in exposed:
        fix = "chmod o-rwx"
        yield Check("files", FAIL, f"{path} is open to every user (mode {mode:04o}): it holds secrets; "
                                   f"run `{fix} {path}`")
    if not exposed:
        yield Check("files", OK, f"{checked} file(s) holding secrets are closed to other users")


def check_limits(ctx: Context) -> Iterator[Check]:
    import resource

    from listener.limits import descriptors_needed

    config = ctx.config
    needed = descriptors_needed(config.raw.get("listener") or {})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else needed
    if limit < needed:
        yield Check("limits", FAIL, f"open files limited to {hard} (hard limit) here, the listener's connection "
                                    f"caps need {needed}: an attacker holding connections would take it down; "
                                    "raise LimitNOFILE in the systemd unit (deploy/systemd) or ulimit -Hn")
        return
    note = "" if soft >= needed else f" (soft {soft}: the listener raises it at start)"
    yield Check("limits", OK, f"open files: hard limit {hard} >= {needed} the listener's caps need{note}")


PROBES = (
    Probe("files", check_files, "files holding secrets (config, registry, journal, evidence) are private"),
    Probe("limits", check_limits, "the open-files limit covers the listener's connection caps"),
)
