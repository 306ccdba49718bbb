"""What the holder of a leaked file does with it, played against a listener on loopback.

Each function uses one contact point of one canary the way an attacker (or
the tools an attacker feeds the records to) would, over the real protocol:
a DNS lookup, a click on the portal link, a login with the leaked
credentials, a phishing email, and an SMS, which reaches us as the webhook a
provider (Twilio) posts, signed with the account's auth token. They return a
short description of the answer the attacker got.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from urllib.parse import urlsplit

import requests

Address = tuple[str, int]
USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
ATTACKER_SENDER = "no-reply@resultats-labo-en-ligne.example"
ATTACKER_PHONE = "+33757000101"
PHISHING_SUBJECT = "Vos résultats d'analyses sont disponibles"
SMS_TEXT = ("Laboratoire: vos resultats sont disponibles. Connectez-vous avant 48h: "
            "https://resultats-labo-en-ligne.example/r/8812")


def resolve(hostname: str, server: Address, timeout: float = 3.0) -> str:
    """An A query over UDP, as any resolver on the path of a click would send."""
    try:
        import dns.flags
        import dns.message
        import dns.query
        import dns.rcode
    except ImportError:  # dnspython is a test extra; dnslib ships with the listener
        return _resolve_dnslib(hostname, server, timeout)
    query = dns.message.make_query(hostname, "A")
    reply = dns.query.udp(query, server[0], port=server[1], timeout=timeout)
    answers = [item.to_text() for rrset in reply.answer for item in rrset]
    authoritative = "authoritative" if reply.flags & dns.flags.AA else "not authoritative"
    return f"{dns.rcode.to_text(reply.rcode())}, {authoritative}, A {', '.join(answers) or '-'}"


def _resolve_dnslib(hostname: str, server: Address, timeout: float) -> str:
    from dnslib import RCODE, DNSRecord

    reply = DNSRecord.parse(DNSRecord.question(hostname, "A").send(server[0], server[1], timeout=timeout))
    answers = [str(rr.rdata) for rr in reply.rr]
    authoritative = "authoritative" if reply.header.aa else "not authoritative"
    return f"{RCODE[reply.header.rcode]}, {authoritative}, A {', '.join(answers) or '-'}"


def open_link(url: str, server: Address, timeout: float = 5.0) -> str:
    """GET the link at our HTTP listener, with the link's own Host header."""
    parts = urlsplit(url)
    local = f"http://{server[0]}:{server[1]}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    response = requests.get(local, headers={"Host": parts.netloc, "User-Agent": USER_AGENT}, timeout=timeout)
    return f"HTTP {response.status_code}, {len(response.content)} bytes: {_title(response.text)}"


def log_in(portal_url: str, login: str, password: str, server: Address, timeout: float = 5.0) -> str:
    """POST the leaked login and password to the portal form."""
    parts = urlsplit(portal_url)
    base = parts.path.rsplit("/", 1)[0] + "/"
    response = requests.post(f"http://{server[0]}:{server[1]}{base}",
                             data={"identifiant": login, "motdepasse": password},
                             headers={"Host": parts.netloc, "User-Agent": USER_AGENT}, timeout=timeout)
    refused = "incorrect" in response.text
    return f"HTTP {response.status_code}" + (" (\"Identifiant ou mot de passe incorrect\")" if refused else "")


def phish(recipient: str, server: Address, timeout: float = 5.0) -> str:
    """A phishing email to the patient's address, through our MX."""
    message = EmailMessage()
    message["From"] = f"Laboratoire - Résultats <{ATTACKER_SENDER}>"
    message["To"] = recipient
    message["Subject"] = PHISHING_SUBJECT
    message.set_content("Bonjour,\n\nVos résultats d'analyses sont disponibles. Pour les consulter, "
                        "confirmez votre identité avant 48 h :\n"
                        "https://resultats-labo-en-ligne.example/connexion?ref=8812\n\nLe laboratoire\n")
    with smtplib.SMTP(server[0], server[1], timeout=timeout) as smtp:
        smtp.ehlo("mail.resultats-labo-en-ligne.example")
        smtp.send_message(message, from_addr=ATTACKER_SENDER, to_addrs=[recipient])  # raises unless 250
    return "accepted (250)"


def text_message(number: str, server: Address, auth_token: str, hooks_path: str = "/hooks",
                 timeout: float = 5.0) -> str:
    """An SMS to the canary's number, as Twilio reports it: a webhook signed with the auth token."""
    from listener.telephony import twilio_signature

    url = f"http://{server[0]}:{server[1]}{hooks_path}/twilio/sms"
    params = {"MessageSid": "SMdemo0000000000000000000000000001", "AccountSid": "ACdemo",
              "From": ATTACKER_PHONE, "To": number, "Body": SMS_TEXT, "NumMedia": "0", "FromCountry": "FR"}
    signature = twilio_signature(auth_token, url, params)
    response = requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=timeout)
    return f"webhook answered HTTP {response.status_code}"


def _title(page: str) -> str:
    start, end = page.find("<title>"), page.find("</title>")
    return page[start + 7:end].strip() if 0 <= start < end else "(no title)"
