"""The on-disk cache of compiled pattern sets.

Compiling 100,000 canaries' literals takes Hyperscan tens of seconds; the
result is saved under ``$CANARY_SCAN_CACHE``, else ``$XDG_CACHE_HOME/canary/scan``,
else ``~/.cache/canary/scan``, keyed by the registry, its canary/token stamp
(ids are never reused, so any addition or removal changes it), the pattern
version and the engine. The files say which records are fake: the folder is
0700 and each file 0600, written atomically; a folder owned by someone else
or open to others is not used (the scan then compiles in memory).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping

log = logging.getLogger(__name__)

MAGIC = b"CANARY-SCAN-PATTERNS\n"
KEEP = 4  # newest files kept per folder


def cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    if environ.get("CANARY_SCAN_CACHE"):
        return Path(environ["CANARY_SCAN_CACHE"])
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "canary" / "scan"


def _usable(folder: Path, create: bool) -> bool:
    try:
        if create:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError:
        return False
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        log.warning("scan cache %s is not private to this user (chmod 700 it, or set CANARY_SCAN_CACHE): "
                    "not used, the patterns are compiled at each scan", folder)
        return False
    return True


def _path(folder: Path, key: str) -> Path:
    return folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".patterns")


def load(key: str, folder: Path | None = None) -> bytearray | None:
    """The cached payload for ``key``, or None (missing, foreign, corrupt)."""
    folder = folder or cache_dir()
    if not _usable(folder, create=False):
        return None
    path = _path(folder, key)
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(MAGIC) + 64 + 1)
            if not head.startswith(MAGIC):
                return None
            payload, found = _read_digested(handle, key)
    except OSError:
        return None
    if found != head[len(MAGIC):len(MAGIC) + 64].decode("ascii", "replace"):
        return None
    return payload


PIECE = 8 << 20


def _read_digested(handle, key: str) -> tuple[bytearray, str]:
    """The rest of the file and ``_digest(key, it)``: each piece is hashed in a thread while
    the next one is read (both let go of the GIL). At 100,000 canaries (275 MB) reading
    took 0.16 s and hashing 0.30 s of a 1.4 s load, one after the other."""
    payload = bytearray(max(0, os.fstat(handle.fileno()).st_size - handle.tell()))
    view = memoryview(payload)
    digest = hashlib.sha256(key.encode())
    at = 0
    with ThreadPoolExecutor(1) as hasher:
        pending = None
        while at < len(payload):
            count = handle.readinto(view[at:at + PIECE])
            if not count:
                break
            if pending is not None:
                pending.result()
            pending = hasher.submit(digest.update, view[at:at + count])
            at += count
        if pending is not None:
            pending.result()
    view.release()
    return payload, digest.hexdigest() if at == len(payload) else ""  # shrank meanwhile: no match


def _digest(key: str, payload: bytes) -> str:
    """sha256 of key then payload, without copying the payload (200 MB with 100,000 canaries)."""
    h = hashlib.sha256(key.encode())
    h.update(payload)
    return h.hexdigest()


def save(key: str, payload: bytes, folder: Path | None = None) -> Path | None:
    folder = folder or cache_dir()
    if not _usable(folder, create=True):
        return None
    digest = _digest(key, payload).encode()
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".patterns-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(MAGIC + digest + b"\n")
                handle.write(payload)
            os.replace(tmp, _path(folder, key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        log.warning("cannot write scan cache in %s: %s", folder, err)
        return None
    _prune(folder)
    return _path(folder, key)


def _prune(folder: Path) -> None:
    """Keep the KEEP newest files; another scan may be pruning the same folder."""
    files = []
    for path in folder.glob("*.patterns"):
        try:
            files.append((path.stat().st_mtime, path))
        except OSError:  # removed meanwhile
            continue
    for _, old in sorted(files, reverse=True)[KEEP:]:
        try:
            old.unlink(missing_ok=True)
        except OSError as err:
            log.warning("cannot prune scan cache %s: %s", old, err)
