"""HTTPS connections that no slow client can hold: cheroot's connection manager, with deadlines.

Cheroot (listener/tls.py) did the TLS handshake in its one accepting thread,
then gave each connection whose first byte had come to one of its few worker
threads, which read the request with blocking reads, each allowed
``http_timeout`` seconds: a client sending one byte every few seconds held the
accepting thread (during the handshake) or a worker for as long as it liked, and
``http_threads`` such clients kept everyone else out (slowloris).

Here, as waitress does for plain HTTP, nothing blocks on a client:

- the accepting thread only accepts: the socket is TLS-wrapped without a
  handshake and registered with cheroot's selector;
- that selector thread, whenever the client sent something, advances the
  handshake and reads what has arrived without blocking, until the request's
  headers are in and, with a ``Content-Length``, its body too; only then is
  the connection handed to a worker, which finds the whole request waiting;
- a request (handshake included, for the first one) must be complete within
  ``request_timeout`` seconds of its first byte, however often bytes come:
  past it, the connection is closed; a connection that sends nothing is closed
  after ``idle_timeout``; whatever a worker still reads (a chunked body) is
  bounded by the same deadline;
- at most ``connection_limit`` connections are open: more are closed at once.

This overrides cheroot's ``ConnectionManager._run``, ``_from_server_socket``
and ``put`` (cheroot/connections.py, 11.x) and its socket-file contract
(``socket.SocketIO`` over an object with ``recv_into`` and ``send``).
"""

from __future__ import annotations

import logging
import re
import selectors
import socket
import ssl
import time
from typing import Any

log = logging.getLogger(__name__)

HEADER_END = b"\r\n\r\n"
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*(\d{1,12})[ \t]*\r\n", re.IGNORECASE)
READ_SIZE = 16384
SELECT_TIMEOUT = 0.1  # seconds between sweeps of expired connections


class PreReadSocket:
    """A connection's TLS socket as cheroot's reader and writer see it: the bytes the selector
    thread already read come first; every later read ends at the request's deadline."""

    def __init__(self, sock: ssl.SSLSocket, idle_timeout: float, request_timeout: float) -> None:
        self._sock = sock
        self._idle = idle_timeout
        self._request_timeout = request_timeout
        self.buffer = bytearray()
        self.handshaken = False
        self.deadline: float | None = None  # monotonic; set by a request's first byte
        self.idle_since = time.monotonic()
        self.wanted: int | None = None  # bytes the request is complete with, once its headers are in

    # -- what cheroot's reader and writer call (from a worker) ----------------------------
    def recv_into(self, view: Any, nbytes: int = 0, flags: int = 0) -> int:
        if self.buffer:
            size = min(len(view), len(self.buffer), nbytes or len(view))
            view[:size] = self.buffer[:size]
            del self.buffer[:size]
            return size
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            self._sock.settimeout(min(self._idle, left))
        else:
            self._sock.settimeout(self._idle)
        return self._sock.recv_into(view, nbytes)

    def send(self, data: Any, flags: int = 0) -> int:
        self._sock.settimeout(self._idle)
        return self._sock.send(data)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._sock.settimeout(self._idle)
        self._sock.sendall(data)

    def __getattr__(self, name: str) -> Any:  # fileno, shutdown, close, _decref_socketios...
        return getattr(self._sock, name)

    # -- the selector thread's side ------------------------------------------------
    def next_request(self) -> None:
        """The previous request is answered: the next one's deadline starts at its first byte."""
        self.deadline = None
        self.wanted = None
        self.idle_since = time.monotonic()
        if self.buffer:  # pipelined: its first byte is already here
            self.deadline = time.monotonic() + self._request_timeout

    def advance(self, header_limit: int, body_limit: int) -> bool:
        """Handshake and read without blocking; True once a whole request (or one to refuse:
        too large, no length) is buffered. Raises OSError/ssl.SSLError when the client is gone
        or speaks no TLS."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self._request_timeout
        self._sock.settimeout(0.0)
        if not self.handshaken:
            try:
                self._sock.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return False
            self.handshaken = True
        while True:
            try:
                chunk = self._sock.recv(READ_SIZE)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            if not chunk:
                raise ConnectionResetError("closed by the client")
            self.buffer += chunk
            if len(self.buffer) > header_limit + body_limit:
                return True  # cheroot answers 413 / 431
        return self._complete(header_limit, body_limit)

    def _complete(self, header_limit: int, body_limit: int) -> bool:
        if self.wanted is None:
            end = self.buffer.find(HEADER_END)
            if end < 0:
                return len(self.buffer) > header_limit  # too long: cheroot refuses it
            length = CONTENT_LENGTH.search(self.buffer, 0, end + 2)
            body = int(length.group(1)) if length else 0
            if body > body_limit:
                return True  # refused unread by cheroot (413)
            self.wanted = end + len(HEADER_END) + body
        return len(self.buffer) >= self.wanted

    def expired(self, now: float) -> bool:
        if self.deadline is not None:
            return now > self.deadline
        return now - self.idle_since > self._idle


def deadline_manager_class(base: type) -> type:
    """A subclass of cheroot's ConnectionManager ``base`` with the behaviour above."""

    class DeadlineConnectionManager(base):  # type: ignore[misc,valid-type]
        request_timeout = 10.0
        connection_limit = 500

        def _from_server_socket(self, server_socket: socket.socket) -> Any:
            server = self.server
            try:
                raw, addr = server_socket.accept()
            except OSError:  # a client that left before accept, EMFILE...: nothing to serve
                return None
            if len(self._selector) > self.connection_limit:  # the listening socket counts too
                raw.close()
                return None
            try:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                wrapped = server.ssl_adapter.context.wrap_socket(raw, server_side=True,
                                                                 do_handshake_on_connect=False)
            except (OSError, ValueError):
                raw.close()
                return None
            sock = PreReadSocket(wrapped, float(server.timeout), self.request_timeout)
            conn = server.ConnectionClass(server, sock, server.ssl_adapter.makefile)
            conn.remote_addr, conn.remote_port = (addr[0], addr[1]) if addr else ("0.0.0.0", 0)
            conn.ssl_env = {"wsgi.url_scheme": "https", "HTTPS": "on"}
            self._selector.register(sock.fileno(), selectors.EVENT_READ, data=conn)
            return None

        def put(self, conn: Any) -> None:
            """A worker is done with a request of ``conn``, kept alive: wait for the next."""
            conn.last_used = time.time()
            sock = conn.socket
            sock.next_request()
            if conn.rfile.has_data():  # the worker's reader already holds the next request's bytes
                sock.deadline = time.monotonic() + self.request_timeout
                self.server.process_conn(conn)
                return
            self._selector.register(sock.fileno(), selectors.EVENT_READ, data=conn)

        def _run(self, expiration_interval: float) -> None:
            server = self.server
            header_limit = int(server.max_request_header_size or 32768)
            body_limit = int(server.max_request_body_size or 0) or 2 ** 26
            last_sweep = time.monotonic()
            while not self._stop_requested:
                try:
                    active = list(self._selector.select(timeout=SELECT_TIMEOUT))
                except OSError:
                    self._remove_invalid_sockets()
                    continue
                for fd, conn in active:
                    if conn is server:
                        self._from_server_socket(server.socket)
                        continue
                    try:
                        ready = conn.socket.advance(header_limit, body_limit)
                    except (OSError, ssl.SSLError, ValueError):  # gone, or no TLS: nothing to answer
                        self._drop(fd, conn)
                        continue
                    if ready:
                        self._selector.unregister(fd)
                        server.process_conn(conn)
                now = time.monotonic()
                if now - last_sweep >= SELECT_TIMEOUT:
                    last_sweep = now
                    for fd, conn in list(self._selector.connections):
                        if conn is not server and conn.socket.expired(now):
                            self._drop(fd, conn)

        def _drop(self, fd: int, conn: Any) -> None:
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError):
                pass
            try:
                conn.close()  # cheroot's: its reader, a TCP shutdown, the socket
            except (OSError, ssl.SSLError):
                pass

    return DeadlineConnectionManager
