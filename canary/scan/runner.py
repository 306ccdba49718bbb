"""Running the matcher over every input on every core.

Worker processes are forked once the pattern set is loaded, so they share
the compiled database (copy-on-write) and receive only small task tuples:
a plain file is cut into slices each worker reads itself (``inputs.read_slice``),
and only streams (archives, transcoded text, spreadsheets) are decoded in
the main process and sent as chunks. At most ``2 * jobs`` tasks are in flight,
so memory stays flat whatever the input size. With ``jobs=1``, or where fork
is not available, everything runs in this process.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from canary.scan import inputs, serials
from canary.scan.matcher import ChunkResult, Item, scan_chunk
from canary.scan.patterns import PatternSet

_PATTERNS: PatternSet | None = None  # set before forking; what workers scan with


@dataclass(frozen=True, slots=True)
class Located:
    """A matcher item placed in its unit, with its 1-based line number."""

    unit: int
    line: int
    item: Item


@dataclass
class RawScan:
    units: list[inputs.Unit] = field(default_factory=list)
    found: list[Located] = field(default_factory=list)
    problems: list[tuple[str, str | None, str]] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0
    jobs: int = 1
    engine: str = ""


def _slice_task(unit: int, seq: int, path: str, start: int, end: int, size: int,
                serial_column: serials.SerialColumn | None = None) -> ChunkResult:
    data, limit = inputs.read_slice(path, start, end, size)
    return scan_chunk(_PATTERNS, unit, seq, data, limit, header=seq == 0, serial_column=serial_column)


def _chunk_task(unit: int, seq: int, data: bytes, limit: int,
                serial_column: serials.SerialColumn | None = None) -> ChunkResult:
    return scan_chunk(_PATTERNS, unit, seq, data, limit, serial_column=serial_column)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def slices(size: int, chunk: int, jobs: int) -> list[tuple[int, int]]:
    """[start, end) of a plain file's slices: ``chunk`` bytes each; with several workers and a
    file of more than two slices each, the last ``jobs`` slices' worth is cut in quarters, so
    that the workers end together (at 100,000 canaries a 16 MB slice is a second of a worker's
    time: one worker waited up to that long for the other at the end of the file)."""
    if jobs <= 1 or size <= 2 * jobs * chunk or chunk < 4:
        return [(start, min(start + chunk, size)) for start in range(0, max(size, 1), chunk)]
    whole = (size - jobs * chunk) // chunk * chunk
    piece = chunk // 4
    return [(start, start + chunk) for start in range(0, whole, chunk)] + \
        [(start, min(start + piece, size)) for start in range(whole, size, piece)]


class Runner:
    def __init__(self, patterns: PatternSet, *, jobs: int | None = None, chunk: int = inputs.CHUNK,
                 progress: Callable[[int], None] | None = None,
                 on_unit: Callable[[inputs.Unit], None] | None = None) -> None:
        self.patterns = patterns
        self.jobs = jobs or default_jobs()
        self.chunk = chunk
        self.progress = progress or (lambda n: None)
        self.on_unit = on_unit or (lambda unit: None)  # told when a file or member starts

    def run(self, paths: Iterable[str]) -> RawScan:
        global _PATTERNS
        started = time.perf_counter()
        raw = RawScan(jobs=self.jobs, engine=self.patterns.engine_name)

        def on_problem(file: str, member: str | None, message: str) -> None:
            raw.problems.append((file, member, message))

        results: list[ChunkResult] = []
        self.patterns.checks  # noqa: B018 (built once here, not in each worker)
        self.patterns.hit_table  # noqa: B018
        self.patterns.probe_table  # noqa: B018
        _PATTERNS = self.patterns
        # The pattern set's objects (millions of tuples with 100,000 canaries) out of the garbage
        # collector's reach: a full collection walked them all in each worker, writing to every
        # page they share with this process (copy on write) for nothing.
        gc.freeze()
        pool = None
        try:
            if self.jobs > 1 and "fork" in multiprocessing.get_all_start_methods():
                pool = multiprocessing.get_context("fork").Pool(self.jobs)
            self._feed(paths, raw, on_problem, results, pool)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
            gc.unfreeze()
            _PATTERNS = None
        self._place(raw, results)
        raw.seconds = time.perf_counter() - started
        return raw

    def _feed(self, paths, raw: RawScan, on_problem, results: list[ChunkResult], pool) -> None:
        pending: deque = deque()
        units: dict[int, inputs.Unit] = {}

        def settle(limit: int) -> None:
            while len(pending) > limit:
                unit_id, seq, size, task = pending.popleft()
                try:
                    result = task.get() if pool is not None else task
                except Exception as err:  # a worker bug on one chunk: report it, go on
                    unit = units[unit_id]
                    on_problem(unit.file, unit.member, f"chunk {seq} not scanned: {type(err).__name__}: {err}")
                    self.progress(size)
                    continue
                results.append(result)
                self.progress(size)

        def submit(unit_id: int, seq: int, size: int, func, args: tuple) -> None:
            task = pool.apply_async(func, args) if pool is not None else func(*args)
            pending.append((unit_id, seq, size, task))
            settle(2 * self.jobs if pool is not None else 0)

        for entry in inputs.walk(paths, on_problem, self.chunk):
            unit = entry.unit
            units[unit.id] = unit
            raw.units.append(unit)
            self.on_unit(unit)
            if isinstance(entry, inputs.SlicedFile):
                unit.bytes = entry.size
                sample = inputs.first_bytes(entry.path)
                column = serials.holds_serials(sample, serials.birth_column(inputs.header_of(sample)))
                workers = self.jobs if pool is not None else 1
                for seq, (start, end) in enumerate(slices(entry.size, self.chunk, workers)):
                    submit(unit.id, seq, end - start, _slice_task,
                           (unit.id, seq, entry.path, start, end, entry.size, column))
            else:
                done = entry.progress()
                column = None
                for seq, (data, limit) in enumerate(entry.chunks):
                    if seq == 0:  # the stream's first chunk set the unit's header
                        column = serials.holds_serials(data[:1 << 16], serials.birth_column(unit.header))
                    now = entry.progress()
                    submit(unit.id, seq, now - done, _chunk_task, (unit.id, seq, data, limit, column))
                    done = now
        settle(0)
        raw.bytes = sum(u.bytes for u in raw.units)

    @staticmethod
    def _place(raw: RawScan, results: list[ChunkResult]) -> None:
        """Absolute line numbers: each chunk's first line follows the previous chunks' line ends."""
        by_unit: dict[int, list[ChunkResult]] = defaultdict(list)
        for result in results:
            by_unit[result.unit].append(result)
        headers = {u.id: u for u in raw.units}
        for unit_id, chunks in by_unit.items():
            chunks.sort(key=lambda r: r.seq)
            base = 0
            for chunk in chunks:
                if chunk.header is not None and not headers[unit_id].header:
                    headers[unit_id].header = chunk.header
                for item in chunk.items:
                    raw.found.append(Located(unit_id, base + item.line + 1, item))
                base += chunk.newlines
        raw.found.sort(key=lambda f: (f.unit, f.line))
