"""Classification rules: a pure function of the observation and the canary's recent hits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.alert_helpers import add_source, make_identity, pipeline, plant, sqlite_registry  # noqa: F401
from canary.hits.classify import BOT_USER_AGENTS, ClassifyRules, classify, user_agent
from canary.errors import ConfigError
from canary.hits.hit import Channel, Classification, Hit, Observation
from canary.model import TokenKind

T0 = datetime(2025, 3, 14, 10, 0, tzinfo=timezone.utc)
RULES = ClassifyRules.from_table({
    "internal_networks": ["10.0.0.0/8", "2001:db8:42::/48"],
    "internal_senders": ["06 12 34 56 78", "CHU-RENNES"],
    "bot_user_agents": ["AcmeLinkChecker"],
    "http_port": 8080,  # a front end's key: ignored here
})


def obs(channel=Channel.HTTP, remote="203.0.113.5", at=T0, kind=TokenKind.URL_CODE, **evidence):
    return Observation(channel=channel, kind=kind, value="k7q2x9code1", remote=remote,
                       evidence=evidence, at=at)


def past(channel: Channel, remote: str | None, at: datetime, n: int = 1) -> Hit:
    return Hit(id=n, canary_id=1, source="lis-rennes", channel=channel, kind=TokenKind.DNS_LABEL,
               value="h4x1", remote=remote, at=at, classification=Classification.HUMAN, evidence={})


def test_unmatched_comes_first():
    assert classify(obs(credential=True), [], RULES, matched=False) is Classification.UNMATCHED


def test_credential_use_wins_even_from_an_internal_network():
    assert classify(obs(credential=True, method="POST"), [], RULES) is Classification.CREDENTIAL_USE
    assert classify(obs(remote="10.1.2.3", credential=True), [], RULES) is Classification.CREDENTIAL_USE
    assert classify(obs(credential="true"), [], RULES) is Classification.CREDENTIAL_USE
    assert classify(obs(credential=False), [], RULES) is Classification.HUMAN


@pytest.mark.parametrize("remote", ["10.200.0.1", "::ffff:10.0.0.9", "2001:db8:42:1::5", "[2001:db8:42::1]"])
def test_internal_networks(remote):
    assert classify(obs(remote=remote, user_agent="Mozilla/5.0"), [], RULES) is Classification.INTERNAL


@pytest.mark.parametrize("remote", ["11.0.0.1", "2001:db8:43::1", None, "not-an-ip", ""])
def test_outside_internal_networks(remote):
    assert classify(obs(remote=remote), [], RULES) is Classification.HUMAN


def test_internal_senders_for_sms_and_calls_only():
    sms = obs(channel=Channel.SMS, kind=TokenKind.PHONE, **{"from": "+33612345678"})
    assert classify(sms, [], RULES) is Classification.INTERNAL
    named = obs(channel=Channel.SMS, kind=TokenKind.PHONE, **{"from": "chu-rennes"})
    assert classify(named, [], RULES) is Classification.INTERNAL
    call = obs(channel=Channel.VOICE, kind=TokenKind.PHONE, **{"from": "0612345678"})
    assert classify(call, [], RULES) is Classification.INTERNAL
    stranger = obs(channel=Channel.SMS, kind=TokenKind.PHONE, **{"from": "+33698765432"})
    assert classify(stranger, [], RULES) is Classification.HUMAN
    # An email's sender is forgeable: only the network of the sending server counts.
    mail = obs(channel=Channel.SMTP, kind=TokenKind.EMAIL, **{"from": "+33612345678"})
    assert classify(mail, [], RULES) is Classification.HUMAN


def test_resolver_recheck_same_resolver_network_within_window():
    dns = obs(channel=Channel.DNS, kind=TokenKind.DNS_LABEL, remote="192.0.2.77", qtype="A")
    assert classify(dns, [], RULES) is Classification.HUMAN
    before = [past(Channel.DNS, "192.0.2.10", T0 - timedelta(minutes=10))]
    assert classify(dns, before, RULES) is Classification.RESOLVER_RECHECK
    other_resolver = [past(Channel.DNS, "198.51.100.10", T0 - timedelta(minutes=10))]
    assert classify(dns, other_resolver, RULES) is Classification.HUMAN
    too_old = [past(Channel.DNS, "192.0.2.10", T0 - timedelta(minutes=31))]
    assert classify(dns, too_old, RULES) is Classification.HUMAN
    not_dns = [past(Channel.HTTP, "192.0.2.10", T0 - timedelta(minutes=1))]
    assert classify(dns, not_dns, RULES) is Classification.HUMAN
    v6 = obs(channel=Channel.DNS, kind=TokenKind.DNS_LABEL, remote="2a00:1450:4007:80f::1")
    assert classify(v6, [past(Channel.DNS, "2a00:1450:4007:1::2", T0 - timedelta(minutes=5))],
                    RULES) is Classification.RESOLVER_RECHECK


def test_click_seconds_after_our_smtp_accepted_the_mail_is_automated():
    smtp = [past(Channel.SMTP, "198.51.100.1", T0 - timedelta(seconds=12))]
    assert classify(obs(user_agent="Mozilla/5.0 Firefox/128.0"), smtp, RULES) is Classification.AUTOMATED
    later = [past(Channel.SMTP, "198.51.100.1", T0 - timedelta(seconds=31))]
    assert classify(obs(user_agent="Mozilla/5.0 Firefox/128.0"), later, RULES) is Classification.HUMAN
    # A future SMTP hit (clock skew between front ends) is no reason.
    future = [past(Channel.SMTP, "198.51.100.1", T0 + timedelta(seconds=5))]
    assert classify(obs(), future, RULES) is Classification.HUMAN


@pytest.mark.parametrize("agent", [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "WhatsApp/2.23.20.0 A",
    "TelegramBot (like TwitterBot)",
    "Mozilla/5.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; ms-office; MSOffice 16)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0",
    "Proofpoint URL Defense",
    "Mimecast-Scanner/1.0",
    "Barracuda Sentinel (EE)",
    "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
    "AcmeLinkChecker/3.1",  # configured
])
def test_known_bots_are_automated(agent):
    assert classify(obs(user_agent=agent), [], RULES) is Classification.AUTOMATED
    assert classify(obs(headers={"USER-AGENT": agent}), [], RULES) is Classification.AUTOMATED


@pytest.mark.parametrize("agent", [
    "curl/8.5.0", "Wget/1.21.4", "python-requests/2.32.3", "Go-http-client/1.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; CUBOT P30) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36",
    "",
])
def test_tools_and_browsers_are_human(agent):
    assert classify(obs(user_agent=agent), [], RULES) is Classification.HUMAN


def test_head_and_options_requests_are_automated():
    assert classify(obs(method="HEAD"), [], RULES) is Classification.AUTOMATED
    assert classify(obs(method="options"), [], RULES) is Classification.AUTOMATED
    assert classify(obs(method="GET"), [], RULES) is Classification.HUMAN


def test_bot_user_agent_does_not_matter_outside_http():
    dns = obs(channel=Channel.DNS, kind=TokenKind.DNS_LABEL, user_agent="Googlebot")
    assert classify(dns, [], RULES) is Classification.HUMAN


def test_user_agent_helper():
    assert user_agent({"User-Agent": "a"}) == "a"
    assert user_agent({"headers": {"user-agent": "b"}}) == "b"
    assert user_agent({"headers": "junk"}) == ""


def test_defaults_and_config_errors():
    rules = ClassifyRules.from_table({})
    assert rules.internal_networks == () and rules.bot_user_agents == BOT_USER_AGENTS
    assert rules.lookback == timedelta(minutes=30)
    with pytest.raises(ConfigError, match=r"listener.internal_networks: '10.0.0/33' is not a network"):
        ClassifyRules.from_table({"internal_networks": ["10.0.0/33"]})
    with pytest.raises(ConfigError, match="listener.internal_senders must be a list of strings"):
        ClassifyRules.from_table({"internal_senders": [42]})
    assert ClassifyRules.from_table({"internal_networks": "192.168.0.0/16"}).internal_networks


@settings(max_examples=200, deadline=None)
@given(channel=st.sampled_from(list(Channel)), remote=st.one_of(st.none(), st.text(max_size=60)),
       evidence=st.dictionaries(st.text(max_size=20), st.one_of(st.text(max_size=50), st.booleans(),
                                                                 st.integers(), st.none()), max_size=6))
def test_never_raises_on_attacker_input(channel, remote, evidence):
    observation = Observation(channel=channel, kind=TokenKind.EMAIL, value="v", remote=remote,
                              evidence=evidence, at=T0)
    result = classify(observation, [past(Channel.DNS, remote, T0 - timedelta(minutes=1))], RULES)
    assert result in set(Classification) - {Classification.UNMATCHED}


def test_the_sink_classifies_with_stored_context(sqlite_registry):
    registry = sqlite_registry
    add_source(registry)
    plant(registry, "lis-rennes", [1])
    sink, _alerter, _index = pipeline(registry, rules=RULES)
    identity = make_identity(1)
    sink.observe(Observation(Channel.SMTP, TokenKind.EMAIL, identity.email, "198.51.100.1", {}, T0))
    click = sink.record(Observation(Channel.HTTP, TokenKind.URL_CODE, identity.url_code, "198.51.100.2",
                                    {"user_agent": "Mozilla/5.0"}, T0 + timedelta(seconds=8)))
    assert click.classification is Classification.AUTOMATED
    first = sink.record(Observation(Channel.DNS, TokenKind.DNS_LABEL, identity.dns_label, "192.0.2.1",
                                    {}, T0 + timedelta(minutes=1)))
    again = sink.record(Observation(Channel.DNS, TokenKind.DNS_LABEL, identity.dns_label, "192.0.2.2",
                                    {}, T0 + timedelta(minutes=6)))
    assert (first.classification, again.classification) == \
        (Classification.HUMAN, Classification.RESOLVER_RECHECK)
    login = sink.record(Observation(Channel.HTTP, TokenKind.PORTAL_LOGIN, identity.portal_login,
                                    "10.1.1.1", {"credential": True}, T0 + timedelta(minutes=7)))
    assert login.classification is Classification.CREDENTIAL_USE
    assert [h.classification for h in registry.list_hits()] == [
        Classification.HUMAN, Classification.AUTOMATED, Classification.HUMAN,
        Classification.RESOLVER_RECHECK, Classification.CREDENTIAL_USE]
