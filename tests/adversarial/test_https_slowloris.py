"""HTTPS slowloris: clients that trickle a byte every few tenths of a second, stall in the TLS
handshake or send nothing at all, more of them than the server has threads, do not keep a new
client out; each is cut at its deadline (listener.http_request_timeout from its first byte,
listener.http_timeout when silent), however often its bytes come. Small deadlines, loopback."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time

import trustme

from listener.tls import HttpsServeConfig, HttpsServer

HOST = "portail.example.fr"

REQUEST_TIMEOUT = 1
IDLE_TIMEOUT = 2
SLOW_REQUESTS = 24  # three times the worker threads
SLOW_HANDSHAKES = 8
SILENT = 8


def write_pair(folder, ca: trustme.CA):
    issued = ca.issue_cert(HOST, "127.0.0.1")
    cert, key = folder / "fullchain.pem", folder / "privkey.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def handshake(address, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(address, timeout=10)
    try:
        return context.wrap_socket(raw, server_hostname=HOST)
    except BaseException:
        raw.close()
        raise


def app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    answer = b"portal:" + str(len(body)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(answer)))])
    return [answer]


def read_answer(sock: ssl.SSLSocket) -> bytes:
    """One whole answer (headers, then Content-Length bytes)."""
    answer = b""
    while True:
        head, sep, body = answer.partition(b"\r\n\r\n")
        if sep:
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            if len(body) >= length:
                return answer
        chunk = sock.recv(4096)
        if not chunk:
            return answer
        answer += chunk


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1024) == b""
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def test_slow_and_silent_https_clients_do_not_keep_a_new_client_out(tmp_path):
    ca = trustme.CA()
    cert, key = write_pair(tmp_path, ca)
    config = HttpsServeConfig(cert_file=cert, key_file=key, host="127.0.0.1", port=0, threads=8,
                              timeout=IDLE_TIMEOUT, request_timeout=REQUEST_TIMEOUT, connection_limit=200)
    context = client_context(ca)
    fds_before = open_fds()
    with HttpsServer(app, config) as server:
        address = server.address
        stop = threading.Event()
        cut: list[float] = []  # seconds from the first byte to the server's close, per slow request

        def trickle(sock: ssl.SSLSocket, started: float) -> None:
            # A request line, then a header byte every 0.3 s, never the blank line.
            try:
                sock.sendall(b"POST /acces/x HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n")
                while not stop.is_set():
                    sock.sendall(b"X")
                    if closed_by_server(sock):
                        break
                    time.sleep(0.3)
            except OSError:
                pass
            cut.append(time.monotonic() - started)

        slow = [handshake(address, context) for _ in range(SLOW_REQUESTS)]
        threads = [threading.Thread(target=trickle, args=(sock, time.monotonic()), daemon=True) for sock in slow]
        for thread in threads:
            thread.start()
        # Half a ClientHello (TLS record header and a few bytes), then nothing.
        stalled = [socket.create_connection(address, timeout=10) for _ in range(SLOW_HANDSHAKES)]
        for sock in stalled:
            sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        silent = [socket.create_connection(address, timeout=10) for _ in range(SILENT)]
        fds_during = open_fds()
        try:
            time.sleep(0.5)  # every slow client is in place
            # New clients are answered at once, again and again, while the slow ones trickle on.
            for n in range(5):
                started = time.monotonic()
                with handshake(address, context) as client:
                    body = b"identifiant=x&motdepasse=y"
                    client.sendall(b"POST /acces/ HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nContent-Length: "
                                   + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
                    answer = read_answer(client)
                assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"portal:" + str(len(body)).encode())
                assert time.monotonic() - started < 1.0, f"new client {n} waited"
                time.sleep(0.2)
            # The trickling requests are cut at their deadline, not kept alive by their bytes.
            for thread in threads:
                thread.join(REQUEST_TIMEOUT + 3)
            assert len(cut) == SLOW_REQUESTS
            assert all(REQUEST_TIMEOUT - 0.5 < seconds < REQUEST_TIMEOUT + 1.5 for seconds in cut), cut
            assert all(closed_by_server(sock) for sock in stalled)  # the handshake counts in the deadline
            time.sleep(IDLE_TIMEOUT - REQUEST_TIMEOUT + 0.5)
            assert all(closed_by_server(sock) for sock in silent)  # silent: the idle timeout
        finally:
            stop.set()
            for sock in slow + stalled + silent:
                sock.close()
        # Descriptors: one per client while they were open, none left once they are gone.
        assert fds_during - fds_before < 2 * (SLOW_REQUESTS + SLOW_HANDSHAKES + SILENT) + 20
        deadline = time.monotonic() + 3
        while open_fds() > fds_before + 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert open_fds() <= fds_before + 6


def test_a_trickled_body_is_cut_and_a_kept_alive_connection_serves_its_next_request(tmp_path):
    ca = trustme.CA()
    cert, key = write_pair(tmp_path, ca)
    config = HttpsServeConfig(cert_file=cert, key_file=key, host="127.0.0.1", port=0, threads=2,
                              timeout=IDLE_TIMEOUT, request_timeout=REQUEST_TIMEOUT)
    context = client_context(ca)
    with HttpsServer(app, config) as server:
        with handshake(server.address, context) as body_trickler:
            body_trickler.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            started = time.monotonic()
            while not closed_by_server(body_trickler) and time.monotonic() - started < 6:
                body_trickler.sendall(b"a")
                time.sleep(0.3)
            assert REQUEST_TIMEOUT - 0.5 < time.monotonic() - started < REQUEST_TIMEOUT + 1.5
        with handshake(server.address, context) as kept:
            for _ in range(2):  # idle between requests: the idle timeout applies, not the deadline
                kept.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_answer(kept).startswith(b"HTTP/1.1 200")
                time.sleep(REQUEST_TIMEOUT + 0.5)
            # A request sent in pieces, within the deadline, is served.
            kept.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
            time.sleep(0.3)
            kept.sendall(b"cd")
            assert read_answer(kept).endswith(b"portal:4")
