"""MLLP (Minimal Lower Layer Protocol) client: send one HL7 message, read its ACK.

A frame is ``0x0B`` + message + ``0x1C 0x0D``. Each exchange opens its own
TCP connection: after a timeout or a broken reply the stream is in an
unknown state, and a fresh connection per message never resends a message
on a connection the receiver may already have acted on.
"""

from __future__ import annotations

import socket
import time

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
MAX_REPLY = 1024 * 1024  # an ACK is a few hundred bytes; stop a runaway peer


class MllpError(Exception):
    """The exchange failed (connect, send, timeout, bad framing); the text says how."""


def frame(message: str) -> bytes:
    return START_BLOCK + message.encode("utf-8") + END_BLOCK


def unframe(data: bytes) -> str:
    """The message in one frame; bytes before the start block are ignored."""
    start = data.find(START_BLOCK)
    end = data.find(END_BLOCK, start + 1)
    if start == -1 or end == -1:
        raise MllpError("reply is not an MLLP frame")
    return data[start + 1:end].decode("utf-8", errors="replace")


class MllpClient:
    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def check_reachable(self) -> None:
        """Open and close a connection: the receiver listens."""
        self._connect().close()

    def exchange(self, message: str) -> str:
        """Send one message and return the reply message (its ACK)."""
        deadline = time.monotonic() + self.timeout
        with self._connect() as sock:
            try:
                sock.sendall(frame(message))
            except OSError as err:
                raise MllpError(f"sending to {self.address} failed ({_reason(err)})") from None
            return self._read_frame(sock, deadline)

    def _connect(self) -> socket.socket:
        try:
            return socket.create_connection((self.host, self.port), timeout=self.timeout)
        except socket.timeout:
            raise MllpError(f"no answer from {self.address} within {self.timeout:g} s") from None
        except OSError as err:
            raise MllpError(f"cannot connect to {self.address} ({_reason(err)})") from None

    def _read_frame(self, sock: socket.socket, deadline: float) -> str:
        data = b""
        while not _complete(data):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MllpError(f"no acknowledgement from {self.address} within {self.timeout:g} s")
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                raise MllpError(f"no acknowledgement from {self.address} within {self.timeout:g} s") from None
            except OSError as err:
                raise MllpError(f"reading the acknowledgement from {self.address} failed "
                                f"({_reason(err)})") from None
            if not chunk:
                raise MllpError(f"{self.address} closed the connection without acknowledging")
            data += chunk
            if len(data) > MAX_REPLY:
                raise MllpError(f"{self.address} sent more than {MAX_REPLY} bytes without a frame end")
        return unframe(data)


def _complete(data: bytes) -> bool:
    start = data.find(START_BLOCK)
    return start != -1 and data.find(END_BLOCK, start + 1) != -1


def _reason(err: OSError) -> str:
    return err.strerror or type(err).__name__
