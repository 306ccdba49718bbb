"""Small binary readers for ``inputs``: encoding sniffing, transcoding to UTF-8,
peeking at a stream's first bytes, counting bytes read, joining lines."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import BinaryIO

CHUNK = 16 << 20


def sniff_encoding(head: bytes, complete: bool = False) -> str:
    """utf-8 (also plain ASCII and unknown binary), utf-16-le/be (BOM or NUL pattern), or cp1252."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    sample = head[:4096]
    if len(sample) >= 8:
        odd_nuls, even_nuls = sample[1::2].count(0), sample[0::2].count(0)
        if odd_nuls > len(sample) * 0.4 and even_nuls < len(sample) * 0.05:
            return "utf-16-le"
        if even_nuls > len(sample) * 0.4 and odd_nuls < len(sample) * 0.05:
            return "utf-16-be"
    if head.isascii() or b"\x00" in sample:
        return "utf-8"
    try:
        head.decode("utf-8") if complete else codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def transcode(stream: BinaryIO, encoding: str) -> BinaryIO:
    if encoding == "utf-8":
        return stream
    return _Transcoder(stream, encoding)


class _Transcoder:
    """A binary reader giving UTF-8 for a stream in another encoding (CP1252 falls
    back to Latin-1 for its five undefined bytes)."""

    def __init__(self, stream: BinaryIO, encoding: str) -> None:
        if encoding == "cp1252":
            codecs.register_error("canary-latin1", _latin1_fallback)
        errors = "canary-latin1" if encoding == "cp1252" else "replace"
        self._decoder = codecs.getincrementaldecoder(encoding)(errors=errors)
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        while True:
            raw = self._stream.read(size if size > 0 else CHUNK)
            text = self._decoder.decode(raw, final=not raw)
            if text or not raw:
                return text.encode("utf-8")


def _latin1_fallback(err: UnicodeDecodeError):
    return err.object[err.start:err.end].decode("latin-1"), err.end


def peek(stream: BinaryIO, size: int) -> tuple[bytes, BinaryIO]:
    head = stream.read(size)
    return head, _Chained(head, stream)


class _Chained:
    """A binary reader returning ``head`` then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head, self._stream = head, stream

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                data, self._head = self._head + self._stream.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._stream.read(size)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


class Counting:
    """A file that tells how many bytes were read (the progress bar)."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle, self._read = handle, 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._read += len(data)
        return data

    def tell(self) -> int:
        return self._read

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._handle.close()


class LineReader:
    def __init__(self, lines: Iterator[bytes]) -> None:
        self._lines, self._rest = lines, b""

    def read(self, size: int = CHUNK) -> bytes:
        parts, total = [self._rest], len(self._rest)
        for line in self._lines:
            parts.append(line)
            total += len(line)
            if total >= size:
                break
        self._rest = b""
        return b"".join(parts)
