"""HTTPS front end: the portal over TLS (cheroot), certificates, protocol versions, settings."""

from __future__ import annotations

import socket
import ssl
import warnings
from pathlib import Path

import pytest
import requests
import trustme

from canary.config import parse_config
from canary.errors import ConfigError
from canary.hits.hit import Channel
from canary.model import TokenKind
from listener.tls import HttpsServeConfig, HttpsServer, tls_context
from listener.wsgi import HttpServer
from test_http import CODE, canary_sink, make_app

HOST = "portail.example.fr"


def write_pair(folder: Path, ca: trustme.CA, name: str = "") -> tuple[Path, Path]:
    """A certificate for HOST and 127.0.0.1 signed by ``ca``: full chain and key, PEM."""
    issued = ca.issue_cert(HOST, "127.0.0.1")
    cert, key = folder / f"{name}fullchain.pem", folder / f"{name}privkey.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    return cert, key


@pytest.fixture
def ca():
    return trustme.CA()


@pytest.fixture
def pair(tmp_path, ca):
    return write_pair(tmp_path, ca)


@pytest.fixture
def https_config(tmp_path, pair):
    table = {"https": "127.0.0.1:0", "tls_cert_file": pair[0].name, "tls_key_file": pair[1].name}
    return HttpsServeConfig.from_table(table, tmp_path)


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def handshake(address, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(address, timeout=5)
    try:
        return context.wrap_socket(raw, server_hostname=HOST)
    except BaseException:
        raw.close()
        raise


def _comparable(response):
    hop_by_hop = {"date", "connection", "keep-alive", "transfer-encoding"}
    return {k.lower(): v for k, v in response.headers.items() if k.lower() not in hop_by_hop}


# -- serving ------------------------------------------------------------------


def test_https_answers_the_same_page_as_http_and_records_the_hit(https_config, ca, tmp_path):
    sink = canary_sink()
    app = make_app(sink)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with HttpsServer(app, https_config) as https, HttpServer(app, port=0) as http:
        host, port = https.address
        assert host == "127.0.0.1" and port > 0
        secure = requests.get(f"https://127.0.0.1:{port}/acces/{CODE}", verify=str(bundle), timeout=5)
        plain = requests.get(f"http://127.0.0.1:{http.address[1]}/acces/{CODE}", timeout=5)
    assert secure.status_code == plain.status_code == 200
    assert secure.content == plain.content
    assert "Espace patient" in secure.text
    assert _comparable(secure) == _comparable(plain)
    assert "server" not in {k.lower() for k in secure.headers}  # no software banner, as over HTTP
    hits = [o for o in sink.observations if o.kind is TokenKind.URL_CODE]
    assert len(hits) == 2 and {o.channel for o in hits} == {Channel.HTTP}
    assert {o.remote for o in hits} == {"127.0.0.1"}


def test_client_verifies_the_certificate_against_the_ca(https_config, ca):
    with HttpsServer(make_app(canary_sink()), https_config) as server:
        with handshake(server.address, client_context(ca)) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert tls.compression() is None
            assert tls.selected_alpn_protocol() in (None, "http/1.1")
            names = [v for field in tls.getpeercert()["subjectAltName"] for v in field[1:]]
            assert HOST in names
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(server.address, client_context(trustme.CA()))  # some other CA: refused by the client


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_tls_1_0_and_1_1_are_refused_by_the_server(https_config, ca, version):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = getattr(ssl.TLSVersion, version)
        context = client_context(ca)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer the old protocol
        context.minimum_version = context.maximum_version = old
    with HttpsServer(make_app(canary_sink()), https_config) as server:
        with pytest.raises(ssl.SSLError) as refused:
            handshake(server.address, context)
        # The server's protocol_version alert, not a client that could not offer the version.
        assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION"
        with handshake(server.address, client_context(ca)) as tls:  # and it still serves
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_context_has_modern_defaults(pair):
    context = tls_context(*pair)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.verify_mode == ssl.CERT_NONE  # browsers present no client certificate
    ciphers = context.get_ciphers()
    assert ciphers and all(c["aead"] for c in ciphers)
    assert {c["kea"] for c in ciphers} <= {"kx-ecdhe", "kx-dhe", "kx-any"}  # kx-any: TLS 1.3 (always ECDHE/DHE)


def test_reload_serves_the_renewed_certificate(tmp_path, https_config, ca):
    renewed_ca = trustme.CA()
    with HttpsServer(make_app(canary_sink()), https_config) as server:
        write_pair(tmp_path, renewed_ca)  # the renewal writes over the same files
        with handshake(server.address, client_context(ca)):
            pass  # not read again yet: the old certificate is served
        server.reload()
        with handshake(server.address, client_context(renewed_ca)):
            pass
        https_config.key_file.write_text("garbage\n")
        with pytest.raises(ConfigError, match="privkey.pem"):
            server.reload()
        with handshake(server.address, client_context(renewed_ca)):  # a failed reload keeps the last good one
            pass


def test_stop_closes_the_port(https_config):
    server = HttpsServer(make_app(canary_sink()), https_config)
    server.start()
    address = server.address
    server.stop()
    server.stop()  # twice is harmless
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=2).close()
    with pytest.raises(RuntimeError):
        server.address


def test_bind_error_raises_in_the_caller(https_config):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = HttpsServer(make_app(canary_sink()), https_config, port=taken.getsockname()[1])
        with pytest.raises(OSError):
            server.start()
        with pytest.raises(RuntimeError):
            server.address


# -- bad files: one line naming the file ---------------------------------------------


def _start_error(config: HttpsServeConfig) -> str:
    server = HttpsServer(make_app(canary_sink()), config)
    with pytest.raises(ConfigError) as error:
        server.start()
    with pytest.raises(RuntimeError):
        server.address  # nothing was bound
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_key_of_another_certificate_is_one_line_naming_the_key(tmp_path, https_config, ca):
    _, other_key = write_pair(tmp_path, ca, name="other-")
    message = _start_error(HttpsServeConfig(https_config.cert_file, other_key, "127.0.0.1", 0))
    assert str(other_key) in message and "does not match" in message


def test_missing_key_file_is_one_line_naming_it(tmp_path, https_config):
    missing = tmp_path / "nowhere" / "privkey.pem"
    message = _start_error(HttpsServeConfig(https_config.cert_file, missing, "127.0.0.1", 0))
    assert str(missing) in message and "cannot read" in message


def test_key_path_that_is_a_folder_is_one_line_naming_it(tmp_path, https_config):
    folder = tmp_path / "keys"
    folder.mkdir()
    message = _start_error(HttpsServeConfig(https_config.cert_file, folder, "127.0.0.1", 0))
    assert str(folder) in message and "cannot read" in message


def test_certificate_that_is_not_pem_is_one_line_naming_it(https_config):
    https_config.cert_file.write_text("this is not a certificate\n")
    message = _start_error(https_config)
    assert str(https_config.cert_file) in message and "not PEM" in message


def test_corrupt_certificate_is_one_line(https_config):
    https_config.cert_file.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    message = _start_error(https_config)
    assert str(https_config.cert_file) in message


# -- settings --------------------------------------------------------------------


def test_unset_https_means_no_tls_front_end(tmp_path):
    assert HttpsServeConfig.from_table({}, tmp_path) is None
    assert HttpsServeConfig.from_table({"https": ""}, tmp_path) is None


def test_paths_are_relative_to_the_config_folder(tmp_path):
    table = {"https": "0.0.0.0:443", "tls_cert_file": "tls/fullchain.pem", "tls_key_file": "/etc/ssl/k.pem",
             "http_threads": 4, "http_timeout": 20}
    config = HttpsServeConfig.from_table(table, tmp_path)
    assert config.cert_file == tmp_path / "tls" / "fullchain.pem"
    assert config.key_file == Path("/etc/ssl/k.pem")
    assert (config.host, config.port, config.threads, config.timeout) == ("0.0.0.0", 443, 4, 20)


@pytest.mark.parametrize("table, match", [
    ({"https": "0.0.0.0:443", "tls_key_file": "k.pem"}, "tls_cert_file"),
    ({"https": "0.0.0.0:443", "tls_cert_file": "c.pem"}, "tls_key_file"),
    ({"https": "443", "tls_cert_file": "c.pem", "tls_key_file": "k.pem"}, "listener.https"),
    ({"https": "[::]:443", "tls_cert_file": "c.pem", "tls_key_file": "k.pem", "http_threads": 0}, "http_threads"),
])
def test_bad_settings_are_one_line(tmp_path, table, match):
    with pytest.raises(ConfigError, match=match):
        HttpsServeConfig.from_table(table, tmp_path)


def test_settings_are_known_to_the_config_loader(tmp_path):
    data = {"contacts": {"email_domains": ["mail-canary.fr"], "dns_zone": "dns.example.fr",
                         "portal_url": "https://portail.example.fr/p/", "phone_pool": ["+33612349999"]},
            "listener": {"https": "0.0.0.0:443", "tls_cert_file": "fullchain.pem", "tls_key_file": "privkey.pem"}}
    config = parse_config(data, path=tmp_path / "canary.toml", environ={})
    assert HttpsServeConfig.from_table(config.raw["listener"], config.base_dir).cert_file == tmp_path / "fullchain.pem"


def test_the_app_sees_https_and_the_client_address(https_config, ca, tmp_path):
    """Webhook signatures are checked against https:// URLs, hits record the peer: both come from environ."""
    seen = {}

    def app(environ, start_response):
        seen.update(scheme=environ["wsgi.url_scheme"], remote=environ["REMOTE_ADDR"], host=environ["HTTP_HOST"])
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with HttpsServer(app, https_config) as server:
        response = requests.get(f"https://127.0.0.1:{server.address[1]}/hooks/twilio/sms", verify=str(bundle),
                                headers={"Host": HOST}, timeout=5)
    assert response.text == "ok"
    assert seen == {"scheme": "https", "remote": "127.0.0.1", "host": HOST}


def test_encrypted_key_is_refused_without_a_prompt(tmp_path, https_config, ca):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(https_config.key_file.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"a passphrase")))
    message = _start_error(HttpsServeConfig(https_config.cert_file, encrypted, "127.0.0.1", 0))
    assert str(encrypted) in message and "encrypted" in message


# -- canary listen: SIGHUP reads renewed certificate files ------------------------------------


def _handshake_ok(port: int, ca: trustme.CA) -> bool:
    try:
        handshake(("127.0.0.1", port), client_context(ca)).close()
        return True
    except (ssl.SSLError, OSError):
        return False


def test_listen_reloads_renewed_certificates_on_sighup(tmp_path):
    """A renewal (certbot's deploy hook: systemctl reload) swaps the certificate without a restart;
    a broken renewal keeps the previous certificate and says so in the log."""
    import signal

    from support.listener_helpers import ListenProcess, wait_for, write_config

    old_ca, new_ca = trustme.CA(), trustme.CA()
    cert, key = write_pair(tmp_path, old_ca)
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}", 9)
    text = config.read_text(encoding="utf-8").replace(
        "[listener]\n", f'[listener]\ntls_cert_file = "{cert.name}"\ntls_key_file = "{key.name}"\n', 1)
    config.write_text(text, encoding="utf-8")
    from canary.registry import Registry

    Registry.open(f"sqlite:///{tmp_path / 'registry.db'}", create=True).close()
    listen = ListenProcess(config, tmp_path / "ports.json", args=("--https", "127.0.0.1:0"))
    try:
        ports = listen.wait_ready()
        port = ports["https"]
        checks = requests.get(f"http://127.0.0.1:{ports['admin']}/readyz", timeout=5).json()["checks"]
        assert checks["https"] == "ok" and set(checks.values()) == {"ok"}, checks
        assert _handshake_ok(port, old_ca) and not _handshake_ok(port, new_ca)
        write_pair(tmp_path, new_ca)  # renewed in place, as certbot does
        listen.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: _handshake_ok(port, new_ca), 10, what="the renewed certificate served")
        assert not _handshake_ok(port, old_ca)
        key.write_text("not a key\n", encoding="utf-8")  # a broken renewal
        listen.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "tls-reload-failed" in listen.stderr(), 10, what="the failed reload logged")
        assert _handshake_ok(port, new_ca) and listen.proc.poll() is None
        assert listen.terminate() == 0
    finally:
        listen.close()
