"""HTTP front end: portal page, hits, identical answers, proxies, serving."""

from __future__ import annotations

import socket

import pytest
import requests
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from canary.contacts import demo_contacts
from canary.errors import ConfigError
from canary.hits.hit import Channel
from canary.model import TokenKind
from listener.http import GIF_1X1, IMAGE_SUFFIXES, PNG_1X1, HttpConfig, create_app
from listener.proxy import TrustedProxies, parse_bind
from listener.wsgi import HttpServeConfig, HttpServer
from support.listener_helpers import FakeSink

CODE = "k7m2q9x4b6n3r8tz"
OTHER_CODE = "a2b3c4d5e6f7g2h3"  # code-shaped, but no canary
LABEL = "dossier-p4k8w2m6r9t3x7bq"
LOGIN = "jean.dupont58"
PASSWORD = "Soleil-2024!"


def canary_sink(**kw):
    return FakeSink({(TokenKind.URL_CODE, CODE), (TokenKind.DNS_LABEL, LABEL),
                     (TokenKind.PORTAL_LOGIN, LOGIN), (TokenKind.EMAIL, "jean.dupont58@courriel-sante.fr")}, **kw)


def make_app(sink, trusted=(), credentials=None):
    table = {"trusted_proxies": list(trusted)}
    return create_app(sink, HttpConfig.from_table(table, contacts=demo_contacts()),
                      credentials=credentials if credentials is not None else {LOGIN: PASSWORD}.get)


@pytest.fixture
def sink():
    return canary_sink()


@pytest.fixture
def client(sink):
    return make_app(sink).test_client()


@pytest.fixture
def served(sink):
    """The app on a real socket (port 0), under the production server."""
    with HttpServer(make_app(sink), port=0) as server:
        host, port = server.address
        yield f"http://{host}:{port}"


def _headers(response):
    return {k: v for k, v in response.headers.items() if k.lower() != "date"}


# -- hits ---------------------------------------------------------------------


def test_canary_code_in_path_is_one_hit_over_a_real_socket(served, sink):
    response = requests.get(f"{served}/acces/{CODE}", headers={
        "User-Agent": "Mozilla/5.0 (X11)", "Referer": "https://mail.example/", "Accept-Language": "fr-FR"})
    assert response.status_code == 200
    assert len(sink.observations) == 1
    hit = sink.observations[0]
    assert (hit.channel, hit.kind, hit.value, hit.remote) == (Channel.HTTP, TokenKind.URL_CODE, CODE, "127.0.0.1")
    assert hit.evidence["method"] == "GET"
    assert hit.evidence["path"] == f"/acces/{CODE}"
    assert hit.evidence["user_agent"] == "Mozilla/5.0 (X11)"
    assert hit.evidence["referer"] == "https://mail.example/"
    assert hit.evidence["accept_language"] == "fr-FR"
    assert hit.evidence["via"] == "path"


def test_unknown_code_records_nothing(client, sink):
    assert client.get(f"/acces/{OTHER_CODE}").status_code == 200
    assert sink.observations == []


@pytest.mark.parametrize("url", [
    f"/acces/{CODE.upper()}",  # codes are matched case-insensitively
    f"/autre/chemin/{CODE}/suite",  # in any segment
    f"/?code={CODE}",  # in a query value
    f"/acces/?x=1&c=%20{CODE.upper()}%20",
    f"/acces/{CODE}.png",  # as an image name
])
def test_code_anywhere_in_path_or_query_is_a_hit(client, sink, url):
    client.get(url)
    assert [(o.kind, o.value) for o in sink.observations] == [(TokenKind.URL_CODE, CODE)]


def test_same_code_twice_is_one_hit(client, sink):
    client.get(f"/acces/{CODE}?c={CODE}")
    assert len(sink.observations) == 1


@pytest.mark.parametrize("host", [f"{LABEL}.rdv-portail.fr", f"{LABEL.upper()}.RDV-PORTAIL.FR:8443",
                                  f"{LABEL}.rdv-portail.fr.", f"www.{LABEL}.rdv-portail.fr"])
def test_canary_label_in_host_header_is_a_hit(client, sink, host):
    client.get("/", headers={"Host": host})
    assert [(o.kind, o.value, o.evidence["via"]) for o in sink.observations] == [(TokenKind.DNS_LABEL, LABEL, "host")]


@pytest.mark.parametrize("host", [f"{LABEL}.example.org", "rdv-portail.fr", f"{LABEL}rdv-portail.fr",
                                  f"x.{LABEL}-rdv-portail.fr", "[::1]:8080", "a" * 5000])
def test_label_outside_our_zone_is_no_hit(client, sink, host):
    assert client.get("/", headers={"Host": host}).status_code in (200, 400)
    assert sink.observations == []


def test_label_and_code_in_one_request_are_two_hits(client, sink):
    client.get(f"/acces/{CODE}", headers={"Host": f"{LABEL}.rdv-portail.fr"})
    assert {(o.kind, o.value) for o in sink.observations} == {(TokenKind.URL_CODE, CODE), (TokenKind.DNS_LABEL, LABEL)}


# -- one answer for all -------------------------------------------------------


def test_known_and_unknown_codes_get_byte_identical_answers(served):
    known = requests.get(f"{served}/acces/{CODE}")
    unknown = requests.get(f"{served}/acces/{OTHER_CODE}")
    assert known.status_code == unknown.status_code == 200
    assert known.content == unknown.content
    assert _headers(known) == _headers(unknown)


@pytest.mark.parametrize("method,path", [
    ("GET", "/"), ("GET", "/wp-admin/"), ("GET", "/healthz"), ("GET", "/hooks/twilio/sms"),
    ("PUT", "/acces/x"), ("DELETE", "/"), ("PROPFIND", "/"), ("HEAD", "/"), ("OPTIONS", "/acces/"),
    ("GET", "/static/app.js"), ("GET", "/%ff%fe"), ("GET", "/acces/" + "x" * 5000),
])
def test_every_route_looks_like_the_portal(client, method, path):
    reference = client.get("/acces/" + OTHER_CODE)
    response = client.open(path, method=method)
    assert response.status_code == 200
    assert _headers(response) == _headers(reference)
    assert response.data == (b"" if method == "HEAD" else reference.data)


def test_every_post_gets_the_failed_login_page(client):
    reference = client.post("/acces/connexion")
    for path in ("/", "/hooks/twilio/sms", "/acces/" + OTHER_CODE, "/x?y=z"):
        response = client.post(path, data={"a": "b"})
        assert response.status_code == 200 and response.data == reference.data
        assert _headers(response) == _headers(reference)


def test_page_is_a_plausible_french_portal_with_security_headers(client):
    response = client.get("/acces/" + CODE)
    page = response.get_data(as_text=True)
    for text in ("Espace patient", "Connexion", "Identifiant", "Mot de passe", "Mot de passe oublié ?",
                 "RGPD", "CNIL", 'lang="fr"', 'action="/acces/connexion"'):
        assert text in page
    headers = response.headers
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "Set-Cookie" not in headers


def test_served_answer_has_no_server_banner(served):
    response = requests.get(f"{served}/")
    assert "Server" not in response.headers
    assert b"waitress" not in response.content.lower() and b"werkzeug" not in response.content.lower()


HOSTILE = "<script>alert(1)</script>"


def test_input_is_never_reflected(client, sink):
    reference = client.get("/").data
    response = client.get(f"/acces/{HOSTILE}?q={HOSTILE}&code={CODE}", headers={
        "User-Agent": HOSTILE, "Referer": HOSTILE, "Accept-Language": HOSTILE, "Host": f"{HOSTILE}.rdv-portail.fr"})
    assert b"<script>" not in response.data and b"alert(1)" not in response.data
    assert response.data == reference
    posted = client.post("/acces/connexion", data={"identifiant": HOSTILE, "motdepasse": HOSTILE})
    assert b"alert(1)" not in posted.data
    assert len(sink.observations) == 1  # the code in the query only


_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_characters="#?"), max_size=300)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_TEXT, query=_TEXT, agent=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300),
       method=st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "PATCH", "TRACE"]))
def test_any_request_gets_the_page_and_reflects_nothing(client, path, query, agent, method):
    assume(not path.lower().endswith(IMAGE_SUFFIXES))  # those get the 1x1 image (tested above)
    reference = client.get("/").data
    # "//x" would be read by the test client as a URL naming host x (it then fails on IDNA), not a path.
    response = client.open("/" + path.lstrip("/"), method=method, query_string={"q": query},
                           headers={"User-Agent": agent})
    assert response.status_code == 200
    assert response.data == (b"" if method == "HEAD" else reference)


def test_evidence_is_capped(client, sink):
    client.get(f"/acces/{CODE}", headers={"User-Agent": "x" * 100_000})
    assert len(sink.observations[0].evidence["user_agent"]) <= 2100


def test_storage_failure_gives_the_same_page():
    sink = canary_sink(fail=True)
    client = make_app(sink).test_client()
    assert client.get(f"/acces/{CODE}").data == client.get(f"/acces/{OTHER_CODE}").data


# -- images ---------------------------------------------------------------------


@pytest.mark.parametrize("path,accept,body,ctype", [
    (f"/acces/{CODE}", "image/avif,image/webp,*/*", GIF_1X1, "image/gif"),
    (f"/acces/{OTHER_CODE}", "image/avif,image/webp,*/*", GIF_1X1, "image/gif"),
    (f"/acces/{CODE}.gif", "*/*", GIF_1X1, "image/gif"),
    (f"/acces/{CODE}.png", "*/*", PNG_1X1, "image/png"),
    ("/favicon.ico", "*/*", GIF_1X1, "image/gif"),
])
def test_images_get_a_1x1_image(client, path, accept, body, ctype):
    response = client.get(path, headers={"Accept": accept})
    assert response.data == body
    assert response.headers["Content-Type"] == ctype


def test_browser_navigation_gets_the_page(client):
    nav = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
    assert client.get(f"/acces/{CODE}", headers={"Accept": nav}).headers["Content-Type"].startswith("text/html")


# -- portal logins --------------------------------------------------------------


def test_canary_credentials_are_a_credential_hit(client, sink):
    response = client.post("/acces/connexion", data={"identifiant": " Jean.Dupont58 ", "motdepasse": PASSWORD})
    assert response.status_code == 200
    assert b"Identifiant ou mot de passe incorrect" in response.data
    [hit] = sink.observations
    assert (hit.kind, hit.value, hit.evidence["credential"], hit.evidence["via"]) == (
        TokenKind.PORTAL_LOGIN, LOGIN, True, "login")
    assert PASSWORD not in repr(hit.evidence)


def test_canary_login_with_wrong_password_is_still_a_hit(client, sink):
    client.post("/acces/connexion", data={"identifiant": LOGIN, "motdepasse": "devine"})
    [hit] = sink.observations
    assert hit.kind is TokenKind.PORTAL_LOGIN and hit.evidence["credential"] is False
    assert "devine" not in repr(hit.evidence)


def test_unknown_login_records_nothing_and_gets_the_same_answer(client, sink):
    good = client.post("/acces/connexion", data={"identifiant": LOGIN, "motdepasse": PASSWORD})
    unknown = client.post("/acces/connexion", data={"identifiant": "marie.martin", "motdepasse": PASSWORD})
    empty = client.post("/acces/connexion")
    assert good.data == unknown.data == empty.data
    assert _headers(good) == _headers(unknown) == _headers(empty)
    assert len(sink.observations) == 1


def test_login_without_credential_checker_records_unknown_outcome(sink):
    client = create_app(sink, HttpConfig.from_table({}, contacts=demo_contacts())).test_client()
    client.post("/", data={"login": LOGIN, "password": "x"})
    assert sink.observations[0].evidence["credential"] is None


def test_oversized_post_gets_the_failed_login_page(client, sink):
    reference = client.post("/acces/connexion", data={"identifiant": "x", "motdepasse": "y"}).data
    response = client.post("/acces/connexion", data={"identifiant": LOGIN, "motdepasse": "x" * 200_000})
    assert response.status_code == 200 and response.data == reference
    assert sink.observations == []


# -- client IP and proxies ------------------------------------------------------


def test_forwarded_for_is_ignored_from_an_untrusted_peer(sink):
    client = make_app(sink).test_client()
    client.get(f"/acces/{CODE}", headers={"X-Forwarded-For": "203.0.113.9"},
               environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert sink.observations[0].remote == "198.51.100.7"


def test_forwarded_for_is_honoured_from_a_trusted_proxy(sink):
    client = make_app(sink, trusted=["10.0.0.0/8"]).test_client()
    client.get(f"/acces/{CODE}", headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.9, 10.1.1.1"},
               environ_base={"REMOTE_ADDR": "10.0.0.2"})
    # 1.2.3.4 was written by the client itself: only the hop our proxies saw counts.
    assert sink.observations[0].remote == "203.0.113.9"
    assert sink.observations[0].evidence["peer"] == "10.0.0.2"


def test_trusted_proxy_over_a_real_socket(sink):
    with HttpServer(make_app(sink, trusted=["127.0.0.0/8"]), port=0) as server:
        host, port = server.address
        requests.get(f"http://{host}:{port}/acces/{CODE}", headers={"X-Forwarded-For": "203.0.113.50"})
    assert sink.observations[0].remote == "203.0.113.50"


@pytest.mark.parametrize("header,environ,expected", [
    ("x-forwarded-for", {"HTTP_X_FORWARDED_FOR": "203.0.113.9"}, "203.0.113.9"),
    ("x-forwarded-for", {"HTTP_X_FORWARDED_FOR": "203.0.113.9, 10.0.0.5"}, "203.0.113.9"),
    ("x-forwarded-for", {"HTTP_X_FORWARDED_FOR": "10.0.0.4, 10.0.0.5"}, "10.0.0.4"),
    ("x-forwarded-for", {"HTTP_X_FORWARDED_FOR": "evil, 203.0.113.9"}, "203.0.113.9"),
    ("x-forwarded-for", {"HTTP_X_FORWARDED_FOR": "203.0.113.9, garbage"}, "10.0.0.1"),
    ("x-forwarded-for", {"HTTP_X_FORWARDED_FOR": "2001:db8::1"}, "2001:db8::1"),
    ("x-forwarded-for", {"HTTP_X_FORWARDED_FOR": "203.0.113.9:5555"}, "203.0.113.9"),
    ("x-forwarded-for", {}, "10.0.0.1"),
    ("x-forwarded-for", {"HTTP_FORWARDED": "for=203.0.113.9"}, "10.0.0.1"),  # not the header we read
    ("forwarded", {"HTTP_FORWARDED": 'for=198.51.100.1, for="[2001:db8:cafe::17]:4711";proto=https'},
     "2001:db8:cafe::17"),
    ("forwarded", {"HTTP_FORWARDED": "for=198.51.100.1;proto=https, for=10.0.0.9"}, "198.51.100.1"),
    ("forwarded", {"HTTP_X_FORWARDED_FOR": "203.0.113.9"}, "10.0.0.1"),
])
def test_client_ip_from_trusted_proxy_headers(header, environ, expected):
    proxies = TrustedProxies.from_table({"trusted_proxies": ["10.0.0.0/8"], "proxy_header": header})
    assert proxies.client_ip("10.0.0.1", environ) == expected


def test_client_ip_ipv4_mapped_peer_is_trusted():
    proxies = TrustedProxies.from_table({"trusted_proxies": "10.0.0.0/8"})
    assert proxies.client_ip("::ffff:10.0.0.1", {"HTTP_X_FORWARDED_FOR": "203.0.113.9"}) == "203.0.113.9"
    assert TrustedProxies().client_ip("10.0.0.1", {"HTTP_X_FORWARDED_FOR": "203.0.113.9"}) == "10.0.0.1"


@pytest.mark.parametrize("table", [{"trusted_proxies": ["not-a-cidr"]}, {"trusted_proxies": 5},
                                   {"proxy_header": "x-real-ip"}])
def test_bad_proxy_settings_are_config_errors(table):
    with pytest.raises(ConfigError):
        TrustedProxies.from_table(table)


@pytest.mark.parametrize("table", [{"http_max_body": "big"}, {"http_max_body": 10}, {"portal_name": ""}])
def test_bad_http_settings_are_config_errors(table):
    with pytest.raises(ConfigError):
        HttpConfig.from_table(table, contacts=demo_contacts())


def test_parse_bind():
    assert parse_bind("127.0.0.1:8080", "x") == ("127.0.0.1", 8080)
    assert parse_bind("[::1]:2525", "x") == ("::1", 2525)
    assert parse_bind(":80", "x") == ("0.0.0.0", 80)
    for bad in ("8080", "host:port", "1.2.3.4:99999", 8080):
        with pytest.raises(ConfigError):
            parse_bind(bad, "listener.http")


# -- serving lifecycle ----------------------------------------------------------


def test_server_binds_port_zero_and_stops_cleanly(sink):
    server = HttpServer(make_app(sink), port=0)
    server.start()
    host, port = server.address
    assert port != 0
    assert requests.get(f"http://{host}:{port}/").status_code == 200
    server.stop()
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=1).close()


def test_bind_error_is_raised_by_start(sink):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = HttpServer(make_app(sink), HttpServeConfig(port=taken.getsockname()[1]))
        with pytest.raises(OSError):
            server.start()


def test_hostile_raw_requests_do_not_kill_the_server(served):
    host, port = served.removeprefix("http://").split(":")
    junk = [b"\x00\xff\xfe garbage\r\n\r\n", b"GET / HTTP/1.1\r\nHost: " + b"a" * 70000 + b"\r\n\r\n",
            b"GET /" + b"%" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]
    for payload in junk:
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(payload)
            try:
                conn.recv(65536)
            except OSError:
                pass
    assert requests.get(f"{served}/").status_code == 200


def test_serve_config_from_table():
    config = HttpServeConfig.from_table({"http": "0.0.0.0:80", "http_threads": 4})
    assert (config.host, config.port, config.threads) == ("0.0.0.0", 80, 4)
    with pytest.raises(ConfigError):
        HttpServeConfig.from_table({"http_threads": 0})


def test_front_end_settings_are_documented():
    from pathlib import Path

    from listener import http, proxy, smtp, telephony, wsgi

    text = (Path(__file__).resolve().parents[2] / "docs" / "listener.md").read_text(encoding="utf-8")
    settings = [s for module in (http, proxy, smtp, telephony, wsgi) for s in module.SETTINGS]
    assert [s.name for s in settings if f"`{s.name}`" not in text] == []
    assert len({s.name for s in settings}) == len(settings)


def test_failing_credential_checker_still_records_and_answers_the_same(sink):
    def broken(login):
        raise RuntimeError("registry down")

    client = make_app(sink, credentials=broken).test_client()
    reference = client.post("/acces/connexion", data={"identifiant": "nobody", "motdepasse": "x"})
    response = client.post("/acces/connexion", data={"identifiant": LOGIN, "motdepasse": PASSWORD})
    assert response.data == reference.data
    assert sink.observations[0].evidence["credential"] is None


def test_with_a_deferred_recorder_the_answer_does_not_wait_for_storage():
    """A canary link must not answer later than another one: with a sink that stores before
    returning, the listener stores its hit after answering (listener/deferred.py). The
    password is checked before the answer, for every login alike (see the next test)."""
    import threading

    from listener.deferred import Deferred

    release = threading.Event()
    checked: list[str] = []

    class BlockedSink(FakeSink):
        def observe(self, observation):
            release.wait(10)  # a registry that takes its time
            super().observe(observation)

    def credentials(login):
        checked.append(login)
        return PASSWORD if login == LOGIN else None

    sink = BlockedSink({(TokenKind.URL_CODE, CODE), (TokenKind.PORTAL_LOGIN, LOGIN)})
    recorder = Deferred("http hits")
    recorder.start()
    app = create_app(sink, HttpConfig.from_table({}, contacts=demo_contacts()), credentials=credentials,
                     defer=recorder.submit)
    client = app.test_client()
    answers = []
    requests_done = threading.Thread(target=lambda: answers.extend([
        client.get(f"/acces/{CODE}"), client.get(f"/acces/{OTHER_CODE}"),
        client.post("/acces/connexion", data={"identifiant": LOGIN, "motdepasse": PASSWORD}),
        client.post("/acces/connexion", data={"identifiant": "marie.martin", "motdepasse": PASSWORD})]))
    requests_done.start()
    requests_done.join(5)
    try:
        assert not requests_done.is_alive(), "the portal waited for the hit to be stored"
        assert answers[0].data == answers[1].data and answers[0].status_code == 200
        assert answers[2].data == answers[3].data
        assert sink.observations == []  # nothing stored yet: after the answers
        assert checked == [LOGIN, "marie.martin"]  # every login's password checked alike
    finally:
        release.set()
        recorder.stop()
    assert [o.value for o in sink.observations] == [CODE, LOGIN]
    assert sink.observations[1].evidence["credential"] is True


def test_every_login_costs_the_same_password_check_and_a_journal_line(tmp_path):
    """The response path of a canary login and of an unknown one: one password check each,
    one journal line each (the unknown one's to /dev/null); only the canary's is stored."""
    from canary.hits.journal import HitJournal, JournalSink

    calls: list[tuple[str, str]] = []

    class CountingCheck:
        def check(self, login, password):
            calls.append((login, password))
            return password == PASSWORD if login == LOGIN else None

    inner = canary_sink()
    journal = HitJournal(tmp_path / "journal", inner)
    journal.open()
    decoys: list[str] = []
    real_decoy = journal.decoy
    journal.decoy = lambda observation: (decoys.append(observation.value), real_decoy(observation))
    app = create_app(JournalSink(journal, inner), HttpConfig.from_table({}, contacts=demo_contacts()),
                     credentials=CountingCheck())
    client = app.test_client()
    canary = client.post("/acces/", data={"identifiant": LOGIN, "motdepasse": PASSWORD})
    unknown = client.post("/acces/", data={"identifiant": "marie.martin", "motdepasse": PASSWORD})
    assert canary.data == unknown.data and _headers(canary) == _headers(unknown)
    assert calls == [(LOGIN, PASSWORD), ("marie.martin", PASSWORD)]
    assert journal.appended == 1 and decoys == ["marie.martin"]
    journal.start()
    assert journal.wait_idle(5)
    journal.stop()
    [hit] = inner.observations
    assert hit.value == LOGIN and hit.evidence["credential"] is True and PASSWORD not in repr(hit.evidence)
