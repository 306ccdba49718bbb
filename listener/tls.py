"""Serving the HTTP app over TLS: cheroot, in-process, with the shared start/stop lifecycle.

The patient-portal links are ``https://`` links: an attacker who follows one
must land on a real certificate, or the link gives the canary away. Either a
reverse proxy in front terminates TLS (``listener.trusted_proxies``), or the
listener does it itself with this module, on ``listener.https``, with the
same Flask app as the plain HTTP front end.

Why cheroot and not waitress here: waitress speaks no TLS. Cheroot (the
CherryPy server) is a production WSGI server that wraps each accepted socket
with an ``ssl.SSLContext`` and, like waitress, runs in threads of the
``canary listen`` process, so both front ends share one hit sink.

``HttpsServer(app, config)``: ``start()`` loads the certificate (a bad file
is one ConfigError line naming it), binds (bind errors raise here, in the
caller's thread), serves from a background thread and returns when ready;
``address`` is the bound (host, port), port 0 picks a free one; ``stop()``
closes the socket and joins the threads. ``reload()`` reads the certificate
files again: connections accepted afterwards get the new certificate.
"""

from __future__ import annotations

import functools
import logging
import ssl
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from canary.config import Setting
from canary.errors import ConfigError
from listener.proxy import parse_bind
from listener.wsgi import HttpServeConfig

log = logging.getLogger(__name__)

SERVER_MARKER = "canary-no-server-header"  # cheroot's Server header value, removed before sending
# TLS 1.2 suites: forward secret and AEAD only (Mozilla's "intermediate" set); TLS 1.3 ones all are.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"
SHUTDOWN_TIMEOUT = 5  # seconds running requests get to finish at stop, as with waitress

SETTINGS: tuple[Setting, ...] = (
    Setting("listener.https", None,
            "Address the HTTPS listener binds, host:port (\"0.0.0.0:443\" in production); unset: no TLS "
            "front end (plain HTTP only, e.g. behind a TLS-terminating reverse proxy). Shares the app and "
            "the http_threads, http_timeout and http_max_body settings of the HTTP listener."),
    Setting("listener.tls_cert_file", None,
            "PEM certificate of listener.https, full chain (server certificate first); relative to the "
            "folder of canary.toml. Read at start and again on SIGHUP (systemctl reload canary-listener) after a renewal."),
    Setting("listener.tls_key_file", None,
            "PEM private key of listener.tls_cert_file, unencrypted, readable by the listener's user only."),
)


def _path(table: Mapping[str, Any], key: str, base: Path) -> Path:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"listener.https is set: listener.{key} must name a PEM file")
    return base / value  # an absolute value stays as it is


@dataclass(frozen=True, slots=True)
class HttpsServeConfig:
    cert_file: Path
    key_file: Path
    host: str = "0.0.0.0"
    port: int = 443
    threads: int = 8
    timeout: int = 30
    max_body: int = 65536
    request_timeout: float = 10.0  # a whole request, from its first byte (listener/tlsconn.py)
    connection_limit: int = 500

    @classmethod
    def from_table(cls, table: Mapping[str, Any], base_dir: Path | None = None) -> "HttpsServeConfig | None":
        """From the ``[listener]`` table; None when ``listener.https`` is not set.

        Relative file names are relative to ``base_dir``, the folder of canary.toml.
        """
        if table.get("https") in (None, ""):
            return None
        base = base_dir or Path.cwd()
        host, port = parse_bind(table["https"], "listener.https")
        shared = HttpServeConfig.from_table(table)  # http_threads, http_timeout, http_max_body: read once, there
        return cls(cert_file=_path(table, "tls_cert_file", base), key_file=_path(table, "tls_key_file", base),
                   host=host, port=port, threads=shared.threads, timeout=shared.timeout, max_body=shared.max_body,
                   request_timeout=float(min(shared.request_timeout, shared.timeout)),
                   connection_limit=shared.connection_limit)


def _readable_pem(path: Path, marker: str, what: str) -> str:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as err:
        raise ConfigError(f"cannot read the TLS {what} {path}: {err.strerror}") from None
    if marker not in text:
        raise ConfigError(f"the TLS {what} {path} is not PEM (no \"{marker}\" line)")
    return text


def no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key:
    # an empty password makes loading fail instead.
    return b""


def tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server context: TLS 1.2 or later, forward-secret AEAD ciphers, no compression, no renegotiation."""
    _readable_pem(cert_file, "-----BEGIN CERTIFICATE-----", "certificate file")
    key_text = _readable_pem(key_file, "PRIVATE KEY-----", "key file")
    if "ENCRYPTED" in key_text:
        raise ConfigError(f"the TLS key file {key_file} is encrypted: the listener needs it unencrypted "
                          "(readable by its user only)")
    del key_text
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    context.set_ciphers(TLS12_CIPHERS)
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(str(cert_file), str(key_file), password=no_password)
    except ssl.SSLError as err:
        if "KEY_VALUES_MISMATCH" in str(err):
            raise ConfigError(f"the TLS key file {key_file} does not match the certificate in {cert_file}") from None
        raise ConfigError(f"cannot load the TLS certificate {cert_file} with the key {key_file}: "
                          f"{err.reason or err}") from None
    return context


@functools.cache
def _server_class() -> type:
    """cheroot's WSGI server, quiet; imported on first use so that loading a config stays light."""
    from cheroot import server as cheroot_server
    from cheroot import wsgi as cheroot_wsgi

    class QuietRequest(cheroot_server.HTTPRequest):
        # The portal must not name its software (waitress runs with ident=""), but
        # cheroot writes "Server: <server_name>" (its version when empty) whenever
        # the app set none: that line, with our marker name, is taken out here.
        def send_headers(self) -> None:
            wfile = self.conn.wfile
            self.conn.wfile = _NoServerHeader(wfile)
            try:
                super().send_headers()
            finally:
                self.conn.wfile = wfile

    class Connection(cheroot_server.HTTPConnection):
        RequestHandlerClass = QuietRequest

    class Server(cheroot_wsgi.Server):
        ConnectionClass = Connection

        def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
            # Into our JSON logs rather than raw lines on stderr; handshake noise of scanners at debug.
            log.log(level if level >= logging.WARNING else logging.DEBUG, "HTTPS server: %s", msg,
                    exc_info=traceback)

    return Server


class _NoServerHeader:
    def __init__(self, wfile: Any):
        self._wfile = wfile

    def write(self, data: bytes) -> Any:  # called once, with the status line and every header
        return self._wfile.write(data.replace(b"\r\nServer: " + SERVER_MARKER.encode() + b"\r\n", b"\r\n", 1))


class HttpsServer:
    def __init__(self, app: Callable[..., Any], config: HttpsServeConfig, **overrides: Any):
        self.app = app
        self.config = replace(config, **overrides) if overrides else config
        self._server: Any = None
        self._adapter: Any = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None or self._server.socket is None:
            raise RuntimeError("HTTPS server not started")
        host, port = self._server.socket.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("HTTPS server already running")
        from cheroot.ssl.builtin import BuiltinSSLAdapter

        cfg = self.config
        context = tls_context(cfg.cert_file, cfg.key_file)  # a bad file fails here, before binding
        adapter = BuiltinSSLAdapter(str(cfg.cert_file), str(cfg.key_file))
        adapter.context = context
        server = _server_class()((cfg.host, cfg.port), self.app, numthreads=cfg.threads, max=cfg.threads,
                                 server_name=SERVER_MARKER, timeout=cfg.timeout, shutdown_timeout=SHUTDOWN_TIMEOUT,
                                 request_queue_size=128)
        server.ssl_adapter = adapter
        server.max_request_body_size = 4 * cfg.max_body
        server.max_request_header_size = 32768
        try:
            server.prepare()  # binds now: an address in use raises OSError here
        except BaseException:
            if server.socket is not None:
                server.socket.close()
            raise
        # Handshakes and request reading off the accepting thread and the workers, within an
        # absolute deadline per request (slowloris): listener/tlsconn.py.
        from cheroot import connections as cheroot_connections

        from listener.tlsconn import deadline_manager_class

        stock = server._connections
        manager = deadline_manager_class(cheroot_connections.ConnectionManager)(server)
        manager.request_timeout = cfg.request_timeout
        manager.connection_limit = cfg.connection_limit
        server._connections = manager
        stock.close()
        self._server, self._adapter = server, adapter
        self._thread = threading.Thread(target=self._run, name="canary-https", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._server is not None
        try:
            self._server.serve()
        except Exception:
            log.exception("the HTTPS server stopped on an error")

    @property
    def alive(self) -> bool:
        """Started and its thread still running (for the listener's /readyz)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def reload(self) -> None:
        """Read the certificate and key files again (after a renewal); the old ones stay on error."""
        if self._adapter is None:
            raise RuntimeError("HTTPS server not started")
        self._adapter.context = tls_context(self.config.cert_file, self.config.key_file)
        log.info("TLS certificate reloaded", extra={"event": "tls-reload", "cert": str(self.config.cert_file)})

    def stop(self) -> None:
        if self._thread is None or self._server is None:
            return
        self._server.stop()  # closes the socket, waits up to SHUTDOWN_TIMEOUT for running requests
        self._thread.join()
        self._thread = None
        self._server = self._adapter = None

    def __enter__(self) -> "HttpsServer":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
