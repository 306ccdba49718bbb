"""The DNS listener: authoritative for our zones, records canary hits.

    server = DnsServer(DnsConfig.from_table(config.raw.get("listener")), sink,
                       dns_zone=contacts.dns_zone, email_domains=contacts.email_domains)
    server.start()          # binds UDP and TCP, returns once ready (re-raises bind errors)
    server.addresses        # [(host, port), ...] as bound (port 0 allowed)
    server.stop()           # closes sockets, stores queued hits, joins threads

One asyncio event loop (uvloop when installed, else the standard one) runs
in a thread of its own. UDP: a reader callback drains the socket, many
datagrams per wake-up. TCP: an asyncio protocol (2-byte length framing,
several queries per connection, idle timeout, connection cap). Answers come
from listener/dnswire.py; hits go to the HitSink through listener/dnshits.py,
off the loop; UDP responses pass the rate limiter of listener/ratelimit.py.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Sequence

from canary.hits.hit import HitSink
from listener.dnsconfig import SETTINGS, DnsConfig  # noqa: F401  (SETTINGS: merged by canary.config)
from listener.conncap import ConnectionGate
from listener.dnshits import HitRecorder
from listener.dnswire import Responder, truncated
from listener.dnszone import ZoneSet
from listener.metrics import NO_ANSWER, rcode_name
from listener.ratelimit import DROP, RateLimiter

if TYPE_CHECKING:
    from listener.metrics import ListenerMetrics

__all__ = ["DnsServer", "DnsConfig", "SETTINGS", "ZoneSet"]

log = logging.getLogger("canary.listener.dns")
PORT_ZERO_TRIES = 20  # port 0: find a port free for both UDP and TCP
UDP_BATCH = 64  # datagrams read per readiness event before TCP gets its turn
UDP_MAX_QUERY = 4096  # bytes read per datagram; longer ones are cut (and get FORMERR)
DNS_HEADER = 12  # bytes: a shorter TCP message is not a query
TCP_WRITE_HIGH = 64 * 1024  # bytes of answers buffered for one TCP client before it is paused
TCP_BATCH = 64  # pipelined queries answered per turn of one TCP client
BACKLOG = 16  # datagrams read in one wake-up that mean the loop is saturated ...
SATURATED_FOR = 0.25  # ... for this many seconds (the hit worker then yields)


class DnsServer:
    def __init__(self, config: DnsConfig, sink: HitSink, *, dns_zone: str,
                 email_domains: Sequence[str] = (), zones: ZoneSet | None = None,
                 metrics: "ListenerMetrics | None" = None) -> None:
        self.config = config
        self.zones = zones or ZoneSet.build(config, dns_zone, email_domains)
        self.hits = HitRecorder(sink, config.hit_queue, busy=self._saturated)
        self.gate = ConnectionGate(config.tcp_max_connections, config.tcp_max_per_network)
        self._saturated_at = -1e9  # last time the UDP socket had a backlog
        self.rate_limiter = RateLimiter(config.rate_limit, config.rate_slip) if config.rate_limit else None
        self._responder = Responder(self.zones.answers(), sink.known)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._udp: list[tuple[socket.socket, _UdpReader]] = []
        self._readers: list[_UdpReader] = []  # every one since start(), for stats()
        self._tcp: list[asyncio.AbstractServer] = []
        self._connections: set[_TcpProtocol] = set()
        self._addresses: list[tuple[str, int]] = []
        self.counters = {"tcp_queries": 0, "tcp_refused": 0, "errors": 0}
        self._last_error_log = 0.0
        # Responses by rcode (header byte 3, low nibble), per transport: plain lists of
        # ints bumped on the fast path, summed by the metrics collector at scrape time.
        self._rcodes: dict[str, list[int]] | None = None
        if metrics is not None:
            self._rcodes = {"udp": [0] * 16, "tcp": [0] * 16}
            metrics.watch_dns(self)

    # -- lifecycle -----------------------------------------------------------

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return list(self._addresses)

    @property
    def alive(self) -> bool:
        """Started, serving (its event loop thread runs) and storing hits (its worker runs)."""
        thread = self._thread
        return thread is not None and thread.is_alive() and bool(self._addresses) and self.hits.alive

    @property
    def loop_name(self) -> str:
        return type(self._loop).__module__.split(".")[0] if self._loop else ""

    def start(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            raise RuntimeError("DNS listener already started")
        self._ready.clear()
        self._error = None
        self._readers = []
        self.gate = ConnectionGate(self.config.tcp_max_connections, self.config.tcp_max_per_network)
        if self._rcodes is not None:  # counted since start(), like the readers' query counts
            self._rcodes = {"udp": [0] * 16, "tcp": [0] * 16}
        self.hits.start()
        self._thread = threading.Thread(target=self._run, name="dns-listener", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"DNS listener not ready after {timeout:.0f} s")
        if self._error is not None:
            error, self._error = self._error, None
            self._thread.join()
            self._thread = None
            self.hits.stop()
            raise error

    def stop(self, timeout: float = 10.0) -> None:
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:
                pass  # loop already closed
        thread.join(timeout)
        self._thread = None
        self._addresses = []
        self.hits.stop()

    def __enter__(self) -> "DnsServer":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stats(self) -> dict[str, int]:
        stats = dict(self.counters)
        stats["udp_queries"] = sum(reader.queries for reader in self._readers)
        stats["udp_send_errors"] = sum(reader.send_errors for reader in self._readers)
        stats["handler_errors"] = self._responder.errors
        stats["tcp_connections"] = len(self._connections)
        stats["rrl_slipped"] = self.rate_limiter.slipped if self.rate_limiter is not None else 0
        stats["rrl_dropped"] = self.rate_limiter.dropped if self.rate_limiter is not None else 0
        stats.update(hits_queued=self.hits.queued, hits_stored=self.hits.stored,
                     hits_failed=self.hits.failed, hits_refused=self.hits.refused,
                     hits_pending=self.hits.pending())
        return stats

    def query_counts(self) -> dict[tuple[str, str], int]:
        """Queries since start() by (transport, response code name), NO_ANSWER for the
        ones left unanswered; empty without metrics."""
        if self._rcodes is None:
            return {}
        received = {"udp": sum(reader.queries for reader in self._readers), "tcp": self.counters["tcp_queries"]}
        counts = {}
        for transport, by_code in self._rcodes.items():
            answered = 0
            for code, count in enumerate(list(by_code)):
                if count:
                    counts[transport, rcode_name(code)] = count
                    answered += count
            counts[transport, NO_ANSWER] = max(received[transport] - answered, 0)
        return counts

    # -- event loop thread ---------------------------------------------------

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        if self.config.uvloop:
            try:
                import uvloop  # optional, faster
            except ImportError:
                pass
            else:
                return uvloop.new_event_loop()
        return asyncio.new_event_loop()

    def _run(self) -> None:
        loop = self._new_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._open(loop))
        except BaseException as err:
            self._error = err
            self._addresses = []
            loop.run_until_complete(self._close())
            loop.close()
            self._ready.set()
            return
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._close())
            loop.close()
            self._loop = None

    async def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        for host, port in self.config.binds:
            udp, tcp = _bind_pair(host, port, self.config.recv_buffer)
            reader = _UdpReader(self, udp)
            self._udp.append((udp, reader))
            self._readers.append(reader)
            loop.add_reader(udp.fileno(), reader.readable)
            try:
                self._tcp.append(await loop.create_server(lambda: _TcpProtocol(self), sock=tcp))
            except BaseException:
                tcp.close()
                raise
            self._addresses.append((host, udp.getsockname()[1]))
        log.info("DNS listener on %s (%s loop), zones: %s",
                 ", ".join(f"{h}:{p}" for h, p in self._addresses), type(loop).__module__.split(".")[0],
                 ", ".join(self.zones.apexes))

    async def _close(self) -> None:
        for server in self._tcp:
            server.close()
        for connection in list(self._connections):
            connection.abort()
        loop = asyncio.get_running_loop()
        for udp, _ in self._udp:
            loop.remove_reader(udp.fileno())
            udp.close()
        for server in self._tcp:
            try:
                await asyncio.wait_for(server.wait_closed(), 2.0)
            except (asyncio.TimeoutError, Exception):
                pass
        for _ in range(3):  # let the transports' close callbacks run
            await asyncio.sleep(0)
        self._udp, self._tcp = [], []

    def _saturated(self) -> bool:
        """Is the event loop behind (queries waiting in a UDP socket very recently)?"""
        return time.monotonic() - self._saturated_at < SATURATED_FOR

    def _failure(self, what: str) -> None:
        self.counters["errors"] += 1
        now = time.monotonic()
        if now - self._last_error_log > 10.0:
            self._last_error_log = now
            log.exception("DNS listener: unexpected error on %s (%d so far)", what, self.counters["errors"])


def _bind_pair(host: str, port: int, recv_buffer: int) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket bound to the same address and port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for attempt in range(PORT_ZERO_TRIES if port == 0 else 1):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_INET6:
                udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if recv_buffer:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind((host, port))
            tcp.bind((host, udp.getsockname()[1]))
            tcp.listen(128)
            udp.setblocking(False)
            tcp.setblocking(False)
            return udp, tcp
        except OSError as err:
            udp.close()
            tcp.close()
            if port == 0 and attempt + 1 < PORT_ZERO_TRIES:
                continue
            raise OSError(err.errno, f"DNS listener cannot bind {host}:{port}: {err.strerror}") from None
    raise AssertionError("unreachable")


class _UdpReader:
    """Serves one UDP socket: drains it on each readiness event, answers with sendto.

    Faster than an asyncio DatagramProtocol (one event per datagram, and a
    256 KiB buffer allocated for each): here one wake-up reads up to
    UDP_BATCH queued datagrams, on uvloop and on the standard loop alike.
    """

    def __init__(self, server: DnsServer, sock: socket.socket) -> None:
        self._server = server
        self._sock = sock
        self._handle = server._responder.handle
        self._submit = server.hits.submit
        self._limit = server.rate_limiter.check if server.rate_limiter is not None else None
        self._rcodes = server._rcodes["udp"] if server._rcodes is not None else None
        self.queries = 0
        self.send_errors = 0

    def readable(self) -> None:
        recvfrom, sendto = self._sock.recvfrom, self._sock.sendto
        handle, submit, limit, rcodes = self._handle, self._submit, self._limit, self._rcodes
        now = time.monotonic()
        for count in range(UDP_BATCH):
            try:
                data, addr = recvfrom(UDP_MAX_QUERY)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. an ICMP error reported on the socket: nothing to answer
                break
            self.queries += 1
            try:
                response, hit = handle(data, False)
                if hit is not None and not submit(hit, addr[0], "udp"):
                    continue  # hit queue full: no answer, the resolver retries
                if response is None:
                    continue
                if limit is not None:
                    action = limit(addr[0], now)
                    if action:
                        if action == DROP:
                            continue
                        response = truncated(response)
                if rcodes is not None:
                    rcodes[response[3] & 15] += 1
                sendto(response, addr)
            except OSError:  # send buffer full (EAGAIN), unreachable client...: the client retries
                self.send_errors += 1
            except Exception:
                self._server._failure("UDP")
        else:
            count = UDP_BATCH
        if count >= BACKLOG:
            self._server._saturated_at = now


class _TcpProtocol(asyncio.Protocol):
    """One DNS-over-TCP connection, within the caps: total and per client network
    (``server.gate``), an idle timer re-armed only by a complete query (a byte now and
    then does not keep a slot), an absolute deadline, and no reading while the client
    does not read its answers (what is buffered stays under one read's worth)."""

    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._peer = "?"
        self._admitted = False
        self._paused = False
        self._resume_handle: asyncio.Handle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        server = self._server
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if peer else "?"
        if not server.gate.admit(self._peer):
            server.counters["tcp_refused"] += 1
            transport.abort()  # type: ignore[attr-defined]
            return
        self._admitted = True
        server._connections.add(self)
        transport.set_write_buffer_limits(high=TCP_WRITE_HIGH)  # type: ignore[attr-defined]
        self._deadline = asyncio.get_running_loop().call_later(server.config.tcp_max_duration, self.abort)
        self._arm()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        self._answer_buffered()

    def _answer_buffered(self) -> None:
        self._resume_handle = None
        buffer = self._buffer
        answered = False
        budget = TCP_BATCH
        try:
            while len(buffer) >= 2 and not self._paused:
                if budget == 0:  # the rest after the other clients (UDP too) had their turn
                    self._yield_turn()
                    break
                budget -= 1
                size = int.from_bytes(buffer[:2], "big")
                if size < DNS_HEADER:  # not even a header: junk, which must not keep the slot alive
                    self.abort()
                    return
                if len(buffer) < 2 + size:
                    break
                message = bytes(buffer[2:2 + size])
                del buffer[:2 + size]
                self._server.counters["tcp_queries"] += 1
                response, hit = self._server._responder.handle(message, True)
                if hit is not None and not self._server.hits.submit(hit, self._peer, "tcp"):
                    self.abort()
                    return
                if response is not None:
                    if self._server._rcodes is not None:
                        self._server._rcodes["tcp"][response[3] & 15] += 1
                    self._transport.write(len(response).to_bytes(2, "big") + response)
                answered = True
        except Exception:
            self._server._failure("TCP")
            self.abort()
            return
        if answered:
            self._arm()

    def _yield_turn(self) -> None:
        # A client pipelining thousands of queries got them all answered in one go, while
        # every other client (UDP queries included) waited: one batch, then back in line.
        if self._resume_handle is None:
            self._transport.pause_reading()
            self._resume_handle = asyncio.get_running_loop().call_soon(self._continue)

    def _continue(self) -> None:
        if not self._paused and self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()
        self._answer_buffered()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._server.config.tcp_idle_timeout, self._idle)

    def _idle(self) -> None:
        # close() would wait for the answers still buffered to be sent: a client that does
        # not read them kept its slot (and their memory) until the absolute deadline.
        if self._transport.get_write_buffer_size():
            self.abort()
        else:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def pause_writing(self) -> None:  # client not reading its answers: stop reading its queries
        self._paused = True
        self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        self._transport.resume_reading()
        self._answer_buffered()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._timer, self._deadline, self._resume_handle):
            if timer is not None:
                timer.cancel()
        if self._admitted:
            self._admitted = False
            self._server.gate.release(self._peer)
        self._server._connections.discard(self)
