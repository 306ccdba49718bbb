"""HTTP slowloris: a request trickled a byte at a time is cut at listener.http_request_timeout,
however often bytes arrive; a normal request on a kept-alive connection is not."""

from __future__ import annotations

import socket
import time

from listener.wsgi import HttpServeConfig, HttpServer


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"portal"]


def test_a_trickled_request_is_cut_at_the_request_deadline():
    config = HttpServeConfig(host="127.0.0.1", port=0, timeout=30, request_timeout=2)
    with HttpServer(app, config) as server:
        sock = socket.create_connection(server.address, timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed_after = None
        while time.monotonic() - started < 8:
            try:
                sock.sendall(b"X")  # one header byte every 0.3 s: activity that must not count
                sock.setblocking(False)
                try:
                    if sock.recv(1024) == b"":
                        closed_after = time.monotonic() - started
                        break
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
            except OSError:
                closed_after = time.monotonic() - started
                break
            time.sleep(0.3)
        sock.close()
        assert closed_after is not None and 1.5 < closed_after < 5

        kept = socket.create_connection(server.address, timeout=10)  # served normally, twice
        for _ in range(2):
            kept.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = kept.recv(4096)
            while not answer.endswith(b"portal"):  # headers and body may come in two segments
                more = kept.recv(4096)
                assert more, answer
                answer += more
            assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(2.5)  # idle between requests: http_timeout (30 s) applies, not the request deadline
        kept.close()
