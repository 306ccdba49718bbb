"""The hit journal: every hit is on disk before it is stored, and stored exactly once.

    journal = HitJournal(path, sink)     # sink: the RegistryHitSink
    journal.open(); journal.start()      # replays what a stopped or crashed listener left
    front_end_sink = JournalSink(journal, sink)   # what DNS, HTTP and SMTP are handed
    journal.stop(drain_timeout=10)       # stores what it can in time, the rest waits on disk

Storing a hit is a registry transaction (milliseconds, and SQLite writers
wait for each other); a flood of canary queries arrives faster than that.
So a front end only appends the hit to this journal (one ``write`` of one
JSON line to an append-only file, 0600: microseconds, never waiting for the
registry) and answers; one writer thread reads the journal and stores the
entries through the sink, up to BATCH_MAX of them in one registry
transaction (``observe_many``: a transaction costs more than a hit). The queue is the file, not memory: it is bounded by
the disk, not by a count that an attacker can fill (a full in-memory queue
used to leave canary queries unanswered while other queries were answered,
which told the canaries apart).

Durability: the line reaches the kernel before the front end answers (a
killed process loses nothing); the file is fsync'd in batches every
FSYNC_INTERVAL (a power cut loses at most that). The writer saves how far it
got (``<journal>.cursor``) and empties the file once it has caught up. At
start the entries after the cursor are stored again; each carries a receipt
(``hits.receipt``, unique), so an entry already stored before the crash is
recognised and not stored twice.

Registry errors (RegistryError: "database is locked", connection lost) are
retried until the entry is stored, with a growing pause; the entries wait in
the file meanwhile. An entry the sink refuses for another reason (a bug,
a corrupt line) is retried a few times, then moved to ``<journal>.rejected``
(0600, for the operator) and counted: never silently dropped.

An entry keeps the classification a front end decided at receipt (the access
channel's burst rule, canary/access/record.py); the others are classified
when stored.

Counted in and out (``stats()``, exported by /metrics): appended, stored,
duplicates (already stored), rejected, append failures, and pending
(appended, not yet out).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from canary.config import Setting
from canary.errors import CanaryError, ConfigError, RegistryError
from canary.hits.hit import Channel, Classification, HitSink, Observation
from canary.model import TokenKind

log = logging.getLogger("canary.hits.journal")

SETTINGS: tuple[Setting, ...] = (
    Setting("listener.hit_journal", "hit-journal",
            "File where hits wait until the registry has stored them (append-only, 0600, fsync'd in "
            "batches, replayed at start); relative to canary.toml."),
    Setting("listener.hit_drain_timeout", 10.0,
            "Seconds the listener keeps storing journaled hits when it stops; the rest is stored at "
            "the next start."),
)

FILE_MODE = 0o600
FSYNC_INTERVAL = 0.05  # seconds: the journal is fsync'd at most this late, and read this often
CURSOR_INTERVAL = 0.5  # seconds between saves of the cursor while draining a backlog
READ_CHUNK = 1 << 20  # bytes read from the journal at a time: memory stays bounded
RETRY_FIRST, RETRY_MAX = 0.05, 2.0  # pause after a registry error, doubling up to RETRY_MAX
REJECT_AFTER = 5  # attempts before an entry refused for a non-registry reason is set aside
DECOY_MAX = 1 << 22  # bytes of decoy lines kept before the decoy file is emptied
YIELD_FACTOR = 4.0  # while a front end is saturated, sleep this many times each store's duration
BATCH_MAX = 100  # entries stored in one registry transaction (holds SQLite's write lock ~50 ms at most)


def journal_settings(table: Mapping[str, Any], base_dir: Path) -> tuple[Path, float]:
    """(journal path, drain timeout) from the ``[listener]`` table; ConfigError with one line."""
    name = table.get("hit_journal", "hit-journal")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("listener.hit_journal: expected a file path")
    drain = table.get("hit_drain_timeout", 10.0)
    if isinstance(drain, bool) or not isinstance(drain, (int, float)) or drain < 0:
        raise ConfigError("listener.hit_drain_timeout: expected a number of seconds >= 0")
    return base_dir / Path(name).expanduser(), float(drain)


class JournalError(CanaryError):
    """The journal cannot be written (disk full, permissions)."""


def encode(observation: Observation, receipt: str) -> bytes:
    at = observation.at or datetime.now(timezone.utc)
    record = [receipt, observation.channel.value, observation.kind.value, observation.value,
              observation.remote, at.timestamp(), observation.evidence]
    if observation.classification is not None:  # decided at receipt (access hits): kept for the replay
        record.append(observation.classification.value)
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # bytes that were not UTF-8, kept as surrogates by a decoder
        return json.dumps(_valid_text(record), ensure_ascii=False, separators=(",", ":"),
                          default=str).encode("utf-8") + b"\n"


def _valid_text(value: Any) -> Any:
    """Lone surrogates (undecodable input bytes) become U+FFFD: storable in any database."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if not value.isascii() else value
    if isinstance(value, Mapping):
        return {_valid_text(str(k)): _valid_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_valid_text(v) for v in value]
    return value


def decode(line: bytes) -> Observation:
    receipt, channel, kind, value, remote, at, evidence, *decided = json.loads(line)
    if len(decided) > 1:
        raise ValueError("journal entry with unknown fields")
    return Observation(channel=Channel(channel), kind=TokenKind(kind), value=value, remote=remote,
                       evidence=evidence, at=datetime.fromtimestamp(at, timezone.utc), receipt=receipt,
                       classification=Classification(decided[0]) if decided and decided[0] else None)


class HitJournal:
    def __init__(self, path: Path, sink: HitSink) -> None:
        self.path = Path(path)
        self.cursor_path = self.path.with_name(self.path.name + ".cursor")
        self.rejected_path = self.path.with_name(self.path.name + ".rejected")
        self._sink = sink
        self._lock = threading.Lock()  # appends, and emptying the file
        self._fd: int | None = None
        self.decoy_path = self.path.with_name(self.path.name + ".decoy")
        self._decoy_fd = -1  # decoy(): lines written like real ones, kept nowhere for long
        self._decoy_bytes = 0
        self._prefix = secrets.token_hex(6)  # receipts are unique across restarts
        self._seq = 0
        self._wake = threading.Event()
        self._stop_at: float | None = None  # monotonic deadline once stopping
        self._thread: threading.Thread | None = None
        self._cursor = 0  # bytes of the file already stored
        self._cursor_saved_at = 0.0
        self._last_append_error = 0.0
        self._last_retry_log = 0.0
        self.busy: list[Callable[[], bool]] = []  # saturation probes of the front ends
        self.appended = 0  # in: entries written by this process
        self.replayed = 0  # in: entries found in the file at start
        self.stored = 0  # out: stored by the sink
        self.duplicates = 0  # out: already stored (a replay)
        self.rejected = 0  # out: set aside in .rejected
        self.append_failed = 0  # could not be written: the front end answered with an error
        self.retries = 0  # registry errors retried

    # -- lifecycle ---------------------------------------------------------------

    def open(self) -> None:
        """Open (create, 0600) the journal and count what a previous run left in it."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            os.fchmod(fd, FILE_MODE)
        except OSError as err:
            raise JournalError(f"cannot open the hit journal {self.path}: {err.strerror}") from None
        self._fd = fd
        if self._decoy_fd < 0:
            try:
                decoy = os.open(self.decoy_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, FILE_MODE)
                os.fchmod(decoy, FILE_MODE)
            except OSError as err:
                os.close(fd)
                self._fd = None
                raise JournalError(f"cannot open {self.decoy_path}: {err.strerror}") from None
            self._decoy_fd, self._decoy_bytes = decoy, 0
        size = os.fstat(fd).st_size
        self._cursor = min(self._read_cursor(), size)
        if size > self._cursor:
            with self.path.open("rb") as f:
                f.seek(self._cursor)
                self.replayed = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(READ_CHUNK), b""))
            log.warning("hit journal: %d hits left by the previous run, storing them now", self.replayed,
                        extra={"event": "journal-replay", "entries": self.replayed})

    def start(self) -> None:
        if self._fd is None:
            self.open()
        if self._thread is None:
            self._stop_at = None
            self._thread = threading.Thread(target=self._run, name="hit-journal", daemon=True)
            self._thread.start()

    @property
    def alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def stop(self, drain_timeout: float = 10.0) -> None:
        """Store what is journaled for up to ``drain_timeout`` seconds; the rest stays on disk."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop_at = time.monotonic() + max(drain_timeout, 0.0)
            self._wake.set()
            thread.join(drain_timeout + 30.0)  # a store in progress may take its registry timeout
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.fsync(fd)
            os.close(fd)
        if self._decoy_fd >= 0:
            try:
                os.ftruncate(self._decoy_fd, 0)
            except OSError:
                pass
            os.close(self._decoy_fd)
            self._decoy_fd = -1
        left = self.pending()
        if left:
            log.warning("hit journal: %d hits not stored yet; they stay in %s for the next start",
                        left, self.path, extra={"event": "journal-left", "entries": left})

    # -- the front ends' side ----------------------------------------------------------

    def append(self, observation: Observation) -> None:
        """Write one hit to the journal (never waits for the registry); JournalError if it cannot."""
        self._write(observation, False)
        # The writer is NOT woken here: it reads the journal every FSYNC_INTERVAL. Woken at once,
        # its registry transaction (milliseconds of Python, holding the GIL) ran while this very
        # answer was being sent, so canary answers left later than others (issue #13.2). On its
        # own clock, storing lands on whichever request is in flight then, canary or not.

    def decoy(self, observation: Observation) -> None:
        """What ``append`` does, for a front end answering a query that holds no canary, so
        that it spends the same time as for a canary's and timing tells nothing: the same code
        (``_write``), the line going to ``<journal>.decoy`` (0600, emptied every DECOY_MAX bytes
        and at stop). Not /dev/null: an append to a file costs microseconds more (5.4 against
        2.3 us median, ext4, writes in random order), a difference a thousand probes measure."""
        self._write(observation, True)

    def _write(self, observation: Observation, decoy: bool) -> None:
        with self._lock:
            self._seq += 1
            receipt = observation.receipt or f"j:{self._prefix}:{self._seq}"
            line = encode(observation, receipt)
            fd = self._decoy_fd if decoy else self._fd
            try:
                if fd is None or fd < 0:
                    raise OSError(0, "the journal is closed")
                written = os.write(fd, line)
                if written != len(line):  # disk full mid-line: the reader sets the torn line aside
                    raise OSError(28, "short write")
            except OSError as err:
                if decoy:  # the answer goes out all the same
                    return
                self.append_failed += 1
                now = time.monotonic()
                if now - self._last_append_error > 5.0:
                    self._last_append_error = now
                    log.error("hit journal: cannot write %s (%s): %d hits refused so far", self.path,
                              err.strerror or err, self.append_failed, extra={"event": "journal-write-failed"})
                raise JournalError(f"cannot write the hit journal: {err.strerror or err}") from None
            if not decoy:
                self.appended += 1
                return
            self._decoy_bytes += written
            if self._decoy_bytes > DECOY_MAX:
                try:
                    os.ftruncate(fd, 0)
                except OSError:
                    pass
                self._decoy_bytes = 0

    def pending(self) -> int:
        """Entries in, not yet out (stored, duplicate or rejected)."""
        return self.appended + self.replayed - self.stored - self.duplicates - self.rejected

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.pending() > 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def writer_cpu(self) -> float | None:
        """CPU seconds the writer thread has used so far (storing hits is most of it); None when
        it is not running or the platform cannot tell (bench/bench_access_syslog.py reports it)."""
        thread = self._thread
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))  # type: ignore[union-attr,arg-type]
        except (AttributeError, OSError, TypeError):
            return None

    def stats(self) -> dict[str, int]:
        return {"appended": self.appended, "replayed": self.replayed, "stored": self.stored,
                "duplicates": self.duplicates, "rejected": self.rejected, "append_failed": self.append_failed,
                "retries": self.retries, "pending": self.pending()}

    # -- the writer --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            reader = self.path.open("rb")
        except OSError as err:
            log.error("hit journal: cannot read %s (%s): hits are not stored", self.path, err.strerror)
            return
        with reader:
            reader.seek(self._cursor)
            rest = b""
            while True:
                self._wake.wait(FSYNC_INTERVAL)
                self._wake.clear()
                fd = self._fd
                if fd is not None:
                    try:
                        os.fsync(fd)
                    except OSError:
                        pass
                while True:
                    chunk = reader.read(READ_CHUNK)
                    if not chunk:
                        break
                    lines = (rest + chunk).split(b"\n")
                    rest = lines.pop()  # an incomplete last line: its end is still being written
                    for start in range(0, len(lines), BATCH_MAX):
                        batch = lines[start:start + BATCH_MAX]
                        done = 0 if self._out_of_time() else self._store_batch(batch)
                        # The cursor moves over what is committed, never further: a crash
                        # before it is saved stores those again, recognised by their receipts.
                        self._cursor += sum(len(line) + 1 for line in batch[:done])
                        if done < len(batch):
                            self._save_cursor()
                            return
                        self._maybe_save_cursor()
                caught_up = not rest and self._caught_up(reader)
                if self._stop_at is not None and (caught_up or self._out_of_time()):
                    self._save_cursor()
                    return

    def _out_of_time(self) -> bool:
        return self._stop_at is not None and time.monotonic() > self._stop_at

    def _caught_up(self, reader: Any) -> bool:
        """Everything written is stored: empty the file (it would grow forever otherwise)."""
        with self._lock:
            fd = self._fd
            if fd is None or os.fstat(fd).st_size != self._cursor:
                return False
            if self._cursor:
                os.ftruncate(fd, 0)
                self._cursor = 0
                reader.seek(0)
                self._save_cursor()
        return True

    def _store_batch(self, lines: list[bytes]) -> int:
        """Store entries in ONE registry transaction (``observe_many``); returns how many of
        ``lines``, from the first, are out (stored, duplicates or set aside): all of them, or
        fewer when stopping ran out of time.

        A registry error rolls the whole batch back; it is retried like a single entry. Any
        other error (a bug, an entry the sink refuses) sends the batch through ``_store_line``
        one entry at a time, so that only the bad entry is retried and set aside.
        """
        entries: dict[int, Observation] = {}  # position in ``lines`` -> entry (the readable ones)
        for n, line in enumerate(lines):
            try:
                entries[n] = decode(line)
            except (ValueError, TypeError, KeyError) as err:
                self._reject(line, f"unreadable entry ({type(err).__name__})")
        store_many = getattr(self._sink, "observe_many", None)
        if store_many is None or len(entries) < 2:
            return self._store_each(lines, entries)
        delay = RETRY_FIRST
        while True:
            started = time.monotonic()
            try:
                outcomes = store_many(list(entries.values()))
            except RegistryError as err:
                self.retries += 1
                self._retry_warning(err, delay)
            except Exception as err:  # not the registry: find the entry, one at a time
                log.error("hit journal: storing %d hits together failed (%s); storing them one by one",
                          len(entries), type(err).__name__)
                return self._store_each(lines, entries)
            else:
                replays = sum(1 for outcome in outcomes if outcome is False)
                self.duplicates += replays
                self.stored += len(outcomes) - replays
                self._yield(time.monotonic() - started)
                return len(lines)
            if self._stop_at is not None and time.monotonic() + delay > self._stop_at:
                return 0
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def _store_each(self, lines: list[bytes], entries: dict[int, Observation]) -> int:
        """The entries one transaction each; how many of ``lines`` are out (see _store_batch)."""
        for n, line in enumerate(lines):
            observation = entries.get(n)
            if observation is not None and not self._store_line(line, observation):
                return n
        return len(lines)

    def _store_line(self, line: bytes, observation: Observation | None = None) -> bool:
        """Store one entry, retrying registry errors; False when stopping ran out of time."""
        if observation is None:
            try:
                observation = decode(line)
            except (ValueError, TypeError, KeyError) as err:
                self._reject(line, f"unreadable entry ({type(err).__name__})")
                return True
        delay, failures = RETRY_FIRST, 0
        while True:
            started = time.monotonic()
            try:
                outcome = self._sink.observe(observation)
            except RegistryError as err:
                self.retries += 1
                self._retry_warning(err, delay)
            except Exception as err:  # not the registry: a bug or a bad entry
                failures += 1
                if failures >= REJECT_AFTER:
                    self._reject(line, type(err).__name__)
                    return True
                # The class only: a driver's message quotes the values (tokens, evidence).
                log.error("hit journal: storing a hit failed (%s)", type(err).__name__)
            else:
                if outcome is False:  # the sink recognised a replay
                    self.duplicates += 1
                else:
                    self.stored += 1
                self._yield(time.monotonic() - started)
                return True
            if self._stop_at is not None and time.monotonic() + delay > self._stop_at:
                return False
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def _retry_warning(self, err: RegistryError, delay: float) -> None:
        # One line per interval, however many retries: a locked registry must not flood the log.
        now = time.monotonic()
        if now - self._last_retry_log > 5.0:
            self._last_retry_log = now
            log.warning("hit journal: the registry refused a hit (%s), retrying every %.2f s or less; "
                        "%d retries so far, %d hits waiting", err, delay, self.retries, self.pending(),
                        extra={"event": "journal-retry"})

    def _yield(self, spent: float) -> None:
        # The sink's Python work holds the GIL a front end's event loop needs: while
        # one is saturated, keep to about 1/(1 + YIELD_FACTOR) of the time.
        if self._stop_at is None and any(busy() for busy in self.busy):
            time.sleep(min(YIELD_FACTOR * spent, 0.5))

    def _reject(self, line: bytes, why: str) -> None:
        self.rejected += 1
        try:
            fd = os.open(self.rejected_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            try:
                os.write(fd, line + b"\n")
            finally:
                os.close(fd)
        except OSError as err:
            log.error("hit journal: cannot write %s (%s)", self.rejected_path, err.strerror)
        # Called inside the except block: the traceback is for the bug report (the JSON log
        # formatter hides the values a driver error quotes).
        log.error("hit journal: an entry could not be stored (%s); kept in %s", why, self.rejected_path,
                  exc_info=True, extra={"event": "journal-rejected", "rejected": self.rejected})

    def _read_cursor(self) -> int:
        try:
            return int(self.cursor_path.read_text(encoding="ascii").strip() or 0)
        except (OSError, ValueError):
            return 0

    def _maybe_save_cursor(self) -> None:
        if time.monotonic() - self._cursor_saved_at > CURSOR_INTERVAL:
            self._save_cursor()

    def _save_cursor(self) -> None:
        """Atomically (write, fsync, rename): a torn cursor would replay or skip entries."""
        self._cursor_saved_at = time.monotonic()
        temporary = self.cursor_path.with_name(self.cursor_path.name + ".tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            try:
                os.write(fd, str(self._cursor).encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.cursor_path)
        except OSError as err:  # receipts still keep a replay from storing twice
            log.error("hit journal: cannot save %s (%s)", self.cursor_path, err.strerror)


class JournalSink:
    """The HitSink the front ends get: ``known`` from the index, ``observe`` journals."""

    def __init__(self, journal: HitJournal, sink: HitSink) -> None:
        self.journal = journal
        self.sink = sink

    def known(self, kind: TokenKind, value: str) -> bool:
        return self.sink.known(kind, value)

    def observe(self, observation: Observation) -> None:
        self.journal.append(observation)
