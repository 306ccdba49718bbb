"""Telephony webhooks: Twilio SMS/voice and Vonage SMS, signatures, TwiML."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
import requests
from werkzeug.datastructures import MultiDict

from canary.contacts import demo_contacts
from canary.errors import ConfigError
from canary.hits.hit import Channel
from canary.model import TokenKind
from listener.http import HttpConfig, create_app
from listener.telephony import (TelephonyConfig, twilio_signature, twilio_valid, vonage_signature,
                                vonage_valid)
from listener.wsgi import HttpServer

TOKEN = "twilio-test-token"
SECRET = "vonage-signature-secret"
PHONE = "+33612345678"  # the canary number texted or called
SENDER = "+33798765432"
PHISHING = "Votre dossier patient est bloqué, régularisez sur https://ameli-remb.example/x"


class FakeSink:
    def __init__(self, fail=False):
        self.observations = []
        self.fail = fail
        self._lock = threading.Lock()

    def known(self, kind, value):
        return kind is TokenKind.PHONE and value == PHONE

    def observe(self, observation):
        if self.fail:
            raise RuntimeError("database is down")
        with self._lock:
            self.observations.append(observation)


def make_app(sink, **telephony):
    config = TelephonyConfig(**{"twilio_auth_token": TOKEN, "vonage_signature_secret": SECRET, **telephony})
    return create_app(sink, HttpConfig.from_table({}, contacts=demo_contacts()), telephony=config)


@pytest.fixture
def sink():
    return FakeSink()


@pytest.fixture
def client(sink):
    return make_app(sink).test_client()


SMS_PARAMS = {"MessageSid": "SM0123456789abcdef", "AccountSid": "AC0123", "From": SENDER, "To": PHONE,
              "Body": PHISHING, "NumMedia": "1", "MediaUrl0": "https://api.twilio.com/media/ME1", "FromCountry": "FR"}
CALL_PARAMS = {"CallSid": "CA0123456789abcdef", "AccountSid": "AC0123", "From": SENDER, "To": PHONE,
               "CallStatus": "ringing", "Direction": "inbound", "FromCountry": "FR"}


def twilio_post(client, path, params, url=None, token=TOKEN, signature=None):
    url = url or f"http://localhost{path}"
    signature = signature if signature is not None else twilio_signature(token, url, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


# -- signature algorithms: the providers' own SDK test vectors -------------------

TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_PARAMS = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309",
                 "To": "+18005551212", "Caller": "+14158675309"}


def test_twilio_signature_matches_the_sdk_vectors():
    assert twilio_signature("12345", TWILIO_URL, TWILIO_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    duplicates = MultiDict([("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")])
    assert twilio_signature("12345", TWILIO_URL, duplicates) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


@pytest.mark.parametrize("url,signature", [
    (TWILIO_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    (TWILIO_URL.replace(".com", ".com:1234"), "RSOYDt4T1cUTdK1PDd93/VVr8B8="),  # port removed
    (TWILIO_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),  # signed with :443
    (TWILIO_URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),  # signed with :80
    (TWILIO_URL.replace(".com", ".com:1234").replace("https", "http"), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
])
def test_twilio_validation_with_and_without_port(url, signature):
    assert twilio_valid("12345", url, TWILIO_PARAMS, signature)


def test_twilio_validation_rejects_tampering():
    assert not twilio_valid("12345", TWILIO_URL, {**TWILIO_PARAMS, "To": "+33600000000"}, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio_valid("wrong", TWILIO_URL, TWILIO_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio_valid("12345", TWILIO_URL, TWILIO_PARAMS, "")


VONAGE_PARAMS = {"a": "1", "b": "2", "timestamp": "1461605396"}


@pytest.mark.parametrize("method,expected", [
    ("md5hash", "6af838ef94998832dbfc29020b564830"),
    ("md5", "c15c21ced558c93a226c305f58f902f2"),
    ("sha1", "3e19a4e6880fdc2c1426bfd0587c98b9532f0210"),
    ("sha256", "a321e824b9b816be7c3f28859a31749a098713d39f613c80d455bbaffae1cd24"),
    ("sha512", "812a18f76680fa0fe1b8bd9ee1625466ceb1bd96242e4d050d2cfd9a7b40166c"
               "63ed26ec9702168781b6edcf1633db8ff95af9341701004eec3fcf9550572ee8"),
])
def test_vonage_signature_matches_the_sdk_vectors(method, expected):
    assert vonage_signature("secret", VONAGE_PARAMS, method) == expected
    assert vonage_valid("secret", {**VONAGE_PARAMS, "sig": expected.upper()}, method)
    assert not vonage_valid("secret", {**VONAGE_PARAMS, "b": "3", "sig": expected}, method)


def test_vonage_signature_replaces_separators_in_values():
    assert vonage_signature("s", {"text": "a&b=c"}) == vonage_signature("s", {"text": "a_b_c"})


# -- Twilio routes ----------------------------------------------------------------


def test_twilio_sms_with_valid_signature_is_a_hit_and_gets_twiml(client, sink):
    response = twilio_post(client, "/hooks/twilio/sms", SMS_PARAMS)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    assert ET.fromstring(response.data).tag == "Response"
    [hit] = sink.observations
    assert (hit.channel, hit.kind, hit.value) == (Channel.SMS, TokenKind.PHONE, PHONE)
    assert hit.evidence["body"] == PHISHING
    assert hit.evidence["from"] == SENDER
    assert hit.evidence["provider"] == "twilio"
    assert hit.evidence["num_media"] == 1 and hit.evidence["media"] == ["https://api.twilio.com/media/ME1"]
    assert hit.evidence["message_sid"] == "SM0123456789abcdef"


@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl", "x" * 5000])
def test_twilio_bad_signature_is_403_and_records_nothing(client, sink, signature):
    response = twilio_post(client, "/hooks/twilio/sms", SMS_PARAMS, signature=signature)
    assert response.status_code == 403 and response.data == b""
    assert sink.observations == []


def test_twilio_signature_over_other_params_is_refused(client, sink):
    signature = twilio_signature(TOKEN, "http://localhost/hooks/twilio/sms", SMS_PARAMS)
    forged = {**SMS_PARAMS, "Body": "forged"}
    assert client.post("/hooks/twilio/sms", data=forged, headers={"X-Twilio-Signature": signature}).status_code == 403
    assert sink.observations == []


def test_twilio_signed_public_url_behind_a_proxy(sink):
    client = make_app(sink, public_base_url="https://hooks.example.fr").test_client()
    signed_for_public = twilio_post(client, "/hooks/twilio/sms", SMS_PARAMS,
                                    url="https://hooks.example.fr/hooks/twilio/sms")
    assert signed_for_public.status_code == 200
    signed_for_local = twilio_post(client, "/hooks/twilio/sms", SMS_PARAMS)
    assert signed_for_local.status_code == 403
    assert len(sink.observations) == 1


def test_twilio_voice_gets_a_french_voicemail(client, sink):
    response = twilio_post(client, "/hooks/twilio/voice", CALL_PARAMS)
    assert response.status_code == 200
    root = ET.fromstring(response.data)
    assert root.tag == "Response"
    say = root.find("Say")
    assert say is not None and say.get("language") == "fr-FR" and "message" in say.text
    record = root.find("Record")
    assert record is not None and record.get("action") == "/hooks/twilio/voice/recorded"
    [hit] = sink.observations
    assert (hit.channel, hit.kind, hit.value) == (Channel.VOICE, TokenKind.PHONE, PHONE)
    assert hit.evidence["call_sid"] == "CA0123456789abcdef" and hit.evidence["from"] == SENDER


def test_twilio_recording_callback_keeps_the_recording_url(client, sink):
    params = {**CALL_PARAMS, "RecordingUrl": "https://api.twilio.com/rec/RE1", "RecordingDuration": "12"}
    response = twilio_post(client, "/hooks/twilio/voice/recorded", params)
    assert response.status_code == 200 and ET.fromstring(response.data).find("Hangup") is not None
    [hit] = sink.observations
    assert hit.evidence["stage"] == "recording" and hit.evidence["recording_url"] == "https://api.twilio.com/rec/RE1"


def test_storage_failure_answers_503_so_the_provider_retries():
    client = make_app(FakeSink(fail=True)).test_client()
    assert twilio_post(client, "/hooks/twilio/sms", SMS_PARAMS).status_code == 503
    assert twilio_post(client, "/hooks/twilio/voice", CALL_PARAMS).status_code == 503
    params = vonage_params(to="33612345678")
    assert client.get("/hooks/vonage/sms?" + urlencode(params)).status_code == 503


def test_unconfigured_providers_have_no_route_only_the_portal_page(sink):
    client = make_app(sink, twilio_auth_token=None, vonage_signature_secret=None).test_client()
    portal = client.get("/").data
    for response in (twilio_post(client, "/hooks/twilio/sms", SMS_PARAMS),
                     twilio_post(client, "/hooks/twilio/voice", CALL_PARAMS),
                     client.get("/hooks/vonage/sms?" + urlencode(vonage_params()))):
        assert response.status_code == 200 and b"<form" in response.data  # the portal, as anywhere else
    assert client.get("/hooks/vonage/sms").data == portal
    assert sink.observations == []


def test_hooks_under_a_custom_path_and_the_default_path_is_the_portal(sink):
    client = make_app(sink, hooks_path="/cb-7f3k9").test_client()
    assert twilio_post(client, "/cb-7f3k9/twilio/sms", SMS_PARAMS).status_code == 200
    portal = twilio_post(client, "/hooks/twilio/sms", SMS_PARAMS)
    assert portal.status_code == 200 and b"Espace patient" in portal.data
    assert len(sink.observations) == 1


def test_get_on_a_twilio_hook_is_the_portal(client):
    response = client.get("/hooks/twilio/sms")
    assert response.status_code == 200 and b"Espace patient" in response.data


def test_sms_without_a_number_is_acknowledged_and_not_recorded(client, sink):
    params = {k: v for k, v in SMS_PARAMS.items() if k != "To"}
    assert twilio_post(client, "/hooks/twilio/sms", params).status_code == 200
    assert sink.observations == []


def test_twilio_over_a_real_socket(sink):
    with HttpServer(make_app(sink), port=0) as server:
        host, port = server.address
        url = f"http://{host}:{port}/hooks/twilio/sms"
        good = requests.post(url, data=SMS_PARAMS,
                             headers={"X-Twilio-Signature": twilio_signature(TOKEN, url, SMS_PARAMS)})
        bad = requests.post(url, data=SMS_PARAMS, headers={"X-Twilio-Signature": "AAAA"})
    assert good.status_code == 200 and b"<Response/>" in good.content
    assert bad.status_code == 403
    assert len(sink.observations) == 1


# -- Vonage ---------------------------------------------------------------------


def vonage_params(to="33612345678", method="md5hash", secret=SECRET, **extra):
    params = {"msisdn": "33798765432", "to": to, "messageId": "0A0000001234567B", "text": PHISHING,
              "type": "unicode", "keyword": "VOTRE", "message-timestamp": "2026-03-01 10:00:00",
              "timestamp": "1772359200", "nonce": "aaaabbbb-cccc", **extra}
    params["sig"] = vonage_signature(secret, params, method)
    return params


def test_vonage_get_with_valid_signature_is_a_hit(client, sink):
    response = client.get("/hooks/vonage/sms?" + urlencode(vonage_params()))
    assert response.status_code == 200
    [hit] = sink.observations
    assert (hit.channel, hit.kind, hit.value) == (Channel.SMS, TokenKind.PHONE, PHONE)
    assert hit.evidence["body"] == PHISHING and hit.evidence["provider"] == "vonage"
    assert hit.evidence["from"] == "33798765432"


def test_vonage_post_form_and_json(client, sink):
    assert client.post("/hooks/vonage/sms", data=vonage_params()).status_code == 200
    assert client.post("/hooks/vonage/sms", json=vonage_params()).status_code == 200
    assert [o.value for o in sink.observations] == [PHONE, PHONE]


def test_vonage_hmac_method(sink):
    client = make_app(sink, vonage_signature_method="sha256").test_client()
    assert client.get("/hooks/vonage/sms?" + urlencode(vonage_params(method="sha256"))).status_code == 200
    refused = client.get("/hooks/vonage/sms?" + urlencode(vonage_params(method="md5hash")))
    assert refused.status_code == 200 and refused.data == client.get("/anything").data  # the portal page
    assert client.post("/hooks/vonage/sms", data=vonage_params(method="md5hash")).status_code == 403
    assert len(sink.observations) == 1


@pytest.mark.parametrize("params", [
    vonage_params(secret="wrong"),
    {k: v for k, v in vonage_params().items() if k != "sig"},
    {**vonage_params(), "text": "forged"},
    {**vonage_params(), "sig": ""},
])
def test_vonage_bad_signature_records_nothing_and_looks_like_the_portal(client, sink, params):
    response = client.get("/hooks/vonage/sms?" + urlencode(params))
    portal = client.get("/somewhere/else")
    assert (response.status_code, response.data, response.content_type) == \
        (portal.status_code, portal.data, portal.content_type)
    assert client.post("/hooks/vonage/sms", data=params).status_code == 403  # what providers (and doctor) see
    assert sink.observations == []


def test_vonage_junk_json_is_refused(client, sink):
    for body in ("[1, 2]", "not json", '{"sig": null}'):
        response = client.post("/hooks/vonage/sms", data=body, content_type="application/json")
        assert response.status_code == 403
    assert sink.observations == []


# -- configuration ----------------------------------------------------------------


def test_config_reads_secrets_from_the_environment():
    table = {"public_base_url": "https://hooks.example.fr/", "hooks_path": "/cb/",
             "twilio": {"auth_token_env": "TW"}, "vonage": {"signature_secret_env": "VO", "signature_method": "SHA256"}}
    config = TelephonyConfig.from_table(table, environ={"TW": "tok", "VO": "sec"})
    assert (config.twilio_auth_token, config.vonage_signature_secret) == ("tok", "sec")
    assert (config.public_base_url, config.hooks_path, config.vonage_signature_method) == (
        "https://hooks.example.fr", "/cb", "sha256")
    assert "tok" not in repr(config) and "sec" not in repr(config)
    assert TelephonyConfig.from_table({}, environ={}) == TelephonyConfig()


@pytest.mark.parametrize("table", [
    {"twilio": {"auth_token_env": "MISSING"}}, {"vonage": {"signature_secret_env": "MISSING"}},
    {"vonage": {"signature_method": "crc32"}}, {"public_base_url": "hooks.example.fr"},
    {"hooks_path": "hooks"}, {"twilio": "token"},
])
def test_bad_telephony_settings_are_config_errors(table):
    with pytest.raises(ConfigError):
        TelephonyConfig.from_table(table, environ={})


def test_twilio_url_with_a_query_string_is_checked_as_sent(client, sink):
    path = "/hooks/twilio/sms?site=lyon&x=%C3%A9"
    assert twilio_post(client, path, SMS_PARAMS, url="http://localhost" + path).status_code == 200
    assert len(sink.observations) == 1


def test_a_replayed_twilio_webhook_carries_the_same_receipt(client, sink):
    """The journal stores one hit per receipt (tests/adversarial checks it end to end)."""
    for _ in range(3):
        assert twilio_post(client, "/hooks/twilio/sms", SMS_PARAMS).status_code == 200
    receipts = {o.receipt for o in sink.observations}
    assert receipts == {f"twilio:sms:{SMS_PARAMS['MessageSid']}:{PHONE}"}


def test_the_default_hooks_path_is_random_per_installation_and_kept(tmp_path):
    from listener.telephony import hooks_path_for

    first = TelephonyConfig.from_table({}, {}, tmp_path).hooks_path
    assert first == TelephonyConfig.from_table({}, {}, tmp_path).hooks_path == hooks_path_for(tmp_path)
    assert len(first) >= 16 and first != "/hooks"
    (tmp_path / "other").mkdir()
    assert first != hooks_path_for(tmp_path / "other")
    assert oct((tmp_path / "hooks-path").stat().st_mode & 0o777) == "0o600"
    assert TelephonyConfig.from_table({"hooks_path": "/x/"}, {}, tmp_path).hooks_path == "/x"
