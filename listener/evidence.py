"""The raw messages kept as evidence (.eml), within quotas and a free-space floor.

Mail to a canary is kept whole, so that an investigation has the phishing
message as it was sent. Without limits, five 10 MB mails to one canary added
50 MB of files, and anyone could fill the disk. So:

* per canary (``listener.smtp_evidence_per_canary`` bytes) and in all
  (``listener.smtp_evidence_max``), a message that does not fit is kept only
  up to what is left (possibly nothing) and its hit says so
  (``evidence_truncated`` with the bytes kept and the reason);
* below ``listener.min_free_space`` bytes free on the evidence folder's
  disk, no evidence is written at all; hits are still recorded (they are
  small, and they are what matters).

Usage is read from the folder at start (file names carry a digest of the
canary address they count against) and kept up to date in memory.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FILE_MODE = 0o600
OWNER_CHARS = 12  # hex digits of sha256(canary address) in a file name


def owner_tag(address: str) -> str:
    return hashlib.sha256(address.lower().encode("utf-8")).hexdigest()[:OWNER_CHARS]


class EvidenceStore:
    def __init__(self, folder: Path, *, per_canary: int, total: int, min_free: int) -> None:
        self.folder = folder
        self.per_canary = per_canary
        self.total = total
        self.min_free = min_free
        self._lock = threading.Lock()
        self._used: dict[str, int] = {}
        self._used_total = 0
        self.truncated = 0  # messages kept in part or not at all

    def load(self) -> None:
        """Count what the folder already holds (after a restart)."""
        used: dict[str, int] = {}
        total = 0
        for path in self.folder.glob("*.eml"):
            try:
                size = path.stat().st_size
            except OSError:
                continue
            total += size
            parts = path.stem.split("-")
            if len(parts) >= 3:
                used[parts[-1]] = used.get(parts[-1], 0) + size
        with self._lock:
            self._used, self._used_total = used, total

    def save(self, content: bytes, owner: str) -> tuple[Path | None, dict[str, Any]]:
        """Keep ``content`` (a message for the canary ``owner``) as far as the limits allow.

        Returns the file (None when nothing was kept) and evidence fields to add to the
        hit: empty when the message was kept whole."""
        tag = owner_tag(owner)
        with self._lock:
            room = min(self.per_canary - self._used.get(tag, 0), self.total - self._used_total)
            reason = "per-canary quota" if self.per_canary - self._used.get(tag, 0) <= room else "global quota"
            try:
                free = shutil.disk_usage(self.folder).free
            except OSError:
                free = 0
            if free - len(content) < self.min_free:
                room, reason = 0, "low disk space"
            keep = max(0, min(len(content), room))
            if keep:
                self._used[tag] = self._used.get(tag, 0) + keep
                self._used_total += keep
            if keep < len(content):
                self.truncated += 1
        path = self._write(content[:keep], tag) if keep else None
        if keep == len(content):
            return path, {}
        return path, {"evidence_truncated": {"kept_bytes": keep, "size": len(content), "reason": reason}}

    def _write(self, content: bytes, tag: str) -> Path:
        """A new file of mode 0600, never over an existing one."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = self.folder / f"{stamp}-{secrets.token_hex(8)}-{tag}.eml"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        return path
