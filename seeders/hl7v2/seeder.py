"""The ``hl7v2`` seeder: canary patients sent as HL7 v2.5 ADT messages over MLLP.

The receiving system (an EHR, a LIS, an interface engine) learns about the
canary the way it learns about every patient: an identity feed from the
hospital's identity server, here following IHE PAM France (see
``seeders/hl7v2/pam.py``). Each message waits for its ACK; an AE/AR answer, a
timeout or a broken connection is one ``SourceError`` line.

HL7 v2 has no read-back in PAM, so:

* ``verify`` cannot look: it reports OK with a detail saying the patient was
  accepted at plant time (the ACK), and nothing more;
* ``collides`` cannot ask: it returns False (receivers deduplicate by INS);
* ``locate`` cannot find: it returns None (an interrupted plant is then
  retired as never planted; its tokens stay watched).
"""

from __future__ import annotations

import random
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from canary.errors import ConfigError, SourceError
from canary.model import Identity, Placement, SourceSpec, VerifyResult, VerifyState
from seeders.common import lab_panels
from seeders.hl7v2 import lab
from seeders.hl7v2 import message as h
from seeders.hl7v2 import pam
from seeders.base import PlannedRow, Seeder, SeederOption
from seeders.hl7v2.mllp import MllpClient, MllpError

ACCEPTED = ("AA", "CA")
MAX_ERROR_TEXT = 300
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_DIGITS = re.compile(r"^[0-9]*$")


@dataclass(frozen=True, slots=True)
class Ack:
    code: str  # MSA-1: AA, AE, AR (or CA, CE, CR)
    control_id: str  # MSA-2: the control id of the message acknowledged
    text: str  # why, for AE/AR: ERR-8 / ERR-7 / ERR-3 text / MSA-3


def read_ack(reply: str) -> Ack:
    message = h.parse(reply)
    msa = message.first("MSA")
    if msa is None:
        raise h.ParseError("the reply has no MSA segment")
    reasons = []
    for err in message.all("ERR"):
        where = "-".join(p for p in (err.get(2, 1), err.get(2, 3)) if p)
        text = err.get(8) or err.get(7) or err.get(3, 2) or err.get(3, 1)
        if text:
            reasons.append(f"{where}: {text}" if where else text)
    if not reasons and msa.get(3):
        reasons.append(msa.get(3))
    return Ack(code=msa.get(1).upper(), control_id=msa.get(2), text="; ".join(reasons))


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_ERROR_TEXT else line[:MAX_ERROR_TEXT - 1] + "…"


class Hl7v2Seeder(Seeder):
    name = "hl7v2"
    summary = "HL7 v2.5 ADT messages (IHE PAM France: A28 or A04) over MLLP; retired with A29."
    options = (
        SeederOption("host", "Receiver host name or address (default: from the mllp://HOST:PORT URL)."),
        SeederOption("port", "Receiver TCP port (default: from the URL)."),
        SeederOption("sending_application", "MSH-3, as the hospital's identity server writes it.",
                     required=True),
        SeederOption("sending_facility", "MSH-4, as the identity server writes it.", required=True),
        SeederOption("receiving_application", "MSH-5: the receiving application.", required=True),
        SeederOption("receiving_facility", "MSH-6: the receiving facility.", required=True),
        SeederOption("event", "A28 (add person, ITI-30) or A04 (register an outpatient, ITI-31).",
                     default="A28"),
        SeederOption("pi_authority", "Assigning authority of the PI (IPP) as NAME&OID&ISO.",
                     required=True),
        SeederOption("pi_prefix", "Digits every generated PI and visit number starts with: a range "
                     "the identity server never allocates.", default=""),
        SeederOption("pi_digits", "Length of generated PIs and visit numbers.", default=10),
        SeederOption("pam_version", "PAM France version in MSH-12 (2.5^FRA^VERSION): 2.11 (with the MSH-21 "
                     "conformance declaration) or 2.10.", default="2.11"),
        SeederOption("footprint", "lab: after the ADT, the results of one common panel as an ORU^R01 from "
                     "the laboratory system (seeders/hl7v2/lab.py); none.", default="none"),
        SeederOption("lab_application", "MSH-3 of the result messages: the laboratory system, as it writes "
                     "itself (needed with footprint=lab)."),
        SeederOption("timeout", "Seconds to wait for a connection and for each ACK.", default=10.0),
    )

    def __init__(self, source: SourceSpec, url: str) -> None:
        super().__init__(source, url)
        self.client: MllpClient | None = None
        self.settings: dict[str, Any] = {}

    # -- options -----------------------------------------------------------
    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        typed = super().validate_options(options)
        missing = [o.name for o in cls.options if o.required and not str(typed.get(o.name) or "").strip()]
        if missing:
            raise ConfigError(f"seeder 'hl7v2' needs --set {missing[0]}=VALUE (see docs/seeders/hl7v2.md)")
        if "port" in typed:
            typed["port"] = _int(typed["port"], "port", 1, 65535)
        if "pi_digits" in typed:
            typed["pi_digits"] = _int(typed["pi_digits"], "pi_digits", 4, 20)
        if "timeout" in typed:
            typed["timeout"] = _float(typed["timeout"], "timeout")
        event = str(typed.get("event", "A28")).upper()
        if event not in pam.PLANT_EVENTS:
            raise ConfigError(f"seeder 'hl7v2': event must be A28 or A04, not {typed['event']!r}")
        if "event" in typed:
            typed["event"] = event
        _check_authority(str(typed["pi_authority"]))
        prefix = str(typed.get("pi_prefix", ""))
        if not _DIGITS.match(prefix) or len(prefix) >= int(typed.get("pi_digits", 10)):
            raise ConfigError("seeder 'hl7v2': pi_prefix must be digits, shorter than pi_digits")
        if str(typed.get("footprint", "none")) not in ("none", "lab"):
            raise ConfigError(f"seeder 'hl7v2': footprint must be none or lab, not {typed['footprint']!r}")
        if typed.get("footprint") == "lab" and not str(typed.get("lab_application") or "").strip():
            raise ConfigError("seeder 'hl7v2': footprint=lab needs --set lab_application=NAME (MSH-3 of the "
                              "laboratory system)")
        if "pam_version" in typed and str(typed["pam_version"]) not in pam.PAM_VERSIONS:
            raise ConfigError(f"seeder 'hl7v2': pam_version must be one of {', '.join(pam.PAM_VERSIONS)}, "
                              f"not {typed['pam_version']!r}")
        return typed

    # -- lifecycle ---------------------------------------------------------
    def open(self) -> None:
        settings = {opt.name: self.option(opt.name) for opt in self.options}
        try:
            settings = self.validate_options({k: v for k, v in settings.items() if v is not None})
        except ConfigError as err:
            raise ConfigError(f"source '{self.source.name}': {err}") from None
        host, port = self._address(settings)
        client = MllpClient(host, port, float(settings.get("timeout", 10.0)))
        try:
            client.check_reachable()
        except MllpError as err:
            raise SourceError(f"source '{self.source.name}': {err}") from None
        self.settings, self.client = settings, client

    def close(self) -> None:
        self.client = None

    def _address(self, settings: dict[str, Any]) -> tuple[str, int]:
        parts = urlsplit(self.url or "")
        if parts.scheme and parts.scheme != "mllp":
            raise ConfigError(f"source '{self.source.name}': the URL must look like mllp://HOST:PORT")
        try:
            url_port = parts.port
        except ValueError:
            url_port = None
        host = settings.get("host") or parts.hostname
        port = settings.get("port") or url_port
        if not host or not port:
            raise ConfigError(f"source '{self.source.name}': give the receiver as mllp://HOST:PORT "
                              "(or --set host=... --set port=...)")
        return str(host), int(port)

    def _ready(self) -> MllpClient:
        if self.client is None:
            raise RuntimeError("Hl7v2Seeder.open() was not called")
        return self.client

    @property
    def header(self) -> pam.Header:
        s = self.settings
        return pam.Header(s["sending_application"], s["sending_facility"], s["receiving_application"],
                          s["receiving_facility"], str(s.get("pam_version", "2.11")))

    @property
    def event(self) -> str:
        return str(self.settings.get("event", "A28"))

    # -- planting ----------------------------------------------------------
    def plan(self, identity: Identity) -> list[PlannedRow]:
        self._ready()
        text = self._add_message(identity, pi="", visit="", account="", control_id="", now=datetime.now())
        messages = [text]
        if self.settings.get("footprint") == "lab":
            pid = next(line for line in text.split(h.SEGMENT_END) if line.startswith("PID|"))
            messages.append(self._results_message(pid, None)[2])
        rows = []
        for segment in (s for m in messages for s in h.parse(m).segments):
            values = {f"{segment.name}-{n}": raw for n, raw in enumerate(segment.fields) if n and raw}
            rows.append(PlannedRow(table=segment.name, values=values))
        return rows

    def check_fits(self, identities) -> None:
        for identity in identities:
            if len(identity.nir) != 15:
                raise SourceError(f"source '{self.source.name}': an INS-NIR has 15 characters, "
                                  f"not {len(identity.nir)}")

    def collides(self, identity: Identity) -> bool:
        return False  # no query in PAM: the receiver deduplicates by INS

    def plant(self, identity: Identity) -> Placement:
        self._ready()
        now = datetime.now()
        pi = self._new_number()
        visit = self._new_number() if self.event == "A04" else ""
        account = self._new_number() if self.event == "A04" else ""
        control_id = _control_id(now)
        message = self._add_message(identity, pi=pi, visit=visit, account=account, control_id=control_id, now=now)
        ack = self._send(message, control_id, self.event, pi)
        pid_segment = next(line for line in message.split(h.SEGMENT_END) if line.startswith("PID|"))
        extra = {
            "event": self.event, "message_control_id": control_id, "ack": ack.code, "pi": pi,
            "pi_authority": self.settings["pi_authority"], "sent_at": now.isoformat(timespec="seconds"),
            "pid": pid_segment,
        }
        if visit:
            extra["visit_number"] = visit
            extra["account_number"] = account
        if self.settings.get("footprint") == "lab":
            pv1 = next(line for line in message.split(h.SEGMENT_END) if line.startswith("PV1|"))
            extra["lab"] = self._send_results(extra, pv1 if visit else None)
        return Placement(extra=extra)

    def _send_results(self, extra: dict[str, Any], pv1: str | None) -> dict[str, Any]:
        """The ORU^R01 of one panel; on failure the patient just created is deleted again."""
        order, control_id, results = self._results_message(extra["pid"], pv1)
        try:
            self._send(results, control_id, "R01", extra["pi"])
        except SourceError as err:
            try:
                self.retire(Placement(extra=extra))
            except SourceError as undo:
                raise SourceError(f"{err}; deleting the patient again failed too: {undo}") from None
            raise SourceError(f"{err}; the patient was deleted again") from None
        return {**order, "message_control_id": control_id, "pv1": pv1 or "",
                "application": self.settings["lab_application"]}

    def _results_message(self, pid: str, pv1: str | None) -> tuple[dict[str, Any], str, str]:
        """A new order of one random panel, its message control id and its ORU^R01."""
        rnd = random.Random(secrets.randbits(64))
        panel = lab_panels.pick_panel(rnd)
        now = datetime.now()
        order = lab.order_for(panel, lab_panels.values(panel, rnd), lab_panels.Timing.before(now, rnd),
                              placer=self._new_number(), filler=self._new_number())
        control_id = _control_id(now)
        return order, control_id, lab.results_message(self.header, self.settings["lab_application"], pid,
                                                      control_id=control_id, now=now, order=order, pv1=pv1)

    def _add_message(self, identity: Identity, *, pi: str, visit: str, account: str, control_id: str,
                     now: datetime) -> str:
        return pam.add_person(self.header, identity, event=self.event, control_id=control_id, pi=pi,
                              pi_authority=self.settings["pi_authority"], visit_number=visit,
                              account_number=account, now=now)

    def _new_number(self) -> str:
        prefix = str(self.settings.get("pi_prefix", ""))
        width = int(self.settings.get("pi_digits", 10)) - len(prefix)
        first = "" if prefix else str(1 + secrets.randbelow(9))  # no leading zero
        rest = width - len(first)
        return prefix + first + (f"{secrets.randbelow(10 ** rest):0{rest}d}" if rest else "")

    def _send(self, message: str, control_id: str, event: str, pi: str) -> Ack:
        where = f"source '{self.source.name}'"
        try:
            reply = self._ready().exchange(message)
        except MllpError as err:
            # Sent but not acknowledged: the receiver may have acted on it all the same.
            maybe = f" (it may still have been processed: check PI {pi})" if "acknowledg" in str(err) else ""
            raise SourceError(f"{where}: {event} message {control_id}: {err}{maybe}") from None
        try:
            ack = read_ack(reply)
        except h.ParseError as err:
            raise SourceError(f"{where}: the reply to {event} message {control_id} "
                              f"is not an HL7 ACK ({err})") from None
        if ack.control_id != control_id:
            raise SourceError(f"{where}: the ACK names message {ack.control_id!r}, not {control_id}: "
                              "check that nothing else answers on that port")
        if ack.code not in ACCEPTED:
            verdict = "rejected" if ack.code in ("AR", "CR") else "refused"
            reason = _one_line(ack.text) or "no reason given"
            raise SourceError(f"{where}: the receiver {verdict} {event} message {control_id} "
                              f"({ack.code}): {reason}")
        return ack

    def locate(self, identity: Identity) -> Placement | None:
        return None  # nothing to query over MLLP (see the module docstring)

    # -- after planting ----------------------------------------------------
    def verify(self, identity: Identity, placement: Placement) -> VerifyResult:
        extra = placement.extra
        if not extra.get("message_control_id") or extra.get("ack") not in ACCEPTED:
            return VerifyResult(VerifyState.MISSING, ("no acknowledged HL7 message is recorded",))
        return VerifyResult(VerifyState.OK, (
            f"not verifiable over HL7 v2: accepted at plant time ({extra['ack']} to "
            f"{extra['event']} message {extra['message_control_id']}, PI {extra.get('pi')})",
        ))

    def retire(self, placement: Placement) -> None:
        extra = placement.extra
        pid_segment = extra.get("pid")
        if not pid_segment:
            raise SourceError(f"source '{self.source.name}': the placement holds no PID to delete")
        header, pi = self.header, str(extra.get("pi", ""))
        if extra.get("lab"):
            # Results first, withdrawn as a laboratory withdraws results sent in error (OBX-11 D).
            now = datetime.now()
            control_id = _control_id(now)
            application = extra["lab"].get("application") or self.settings.get("lab_application") or ""
            withdraw = lab.results_message(header, application, pid_segment,
                                           control_id=control_id, now=now, order=extra["lab"],
                                           pv1=extra["lab"].get("pv1") or None, delete=True)
            self._send(withdraw, control_id, "R01", pi)
        if extra.get("event") == "A04" and extra.get("visit_number"):
            # The A04 opened a visit: cancel it first, as the identity server would.
            now = datetime.now()
            control_id = _control_id(now)
            cancel = pam.cancel_visit(
                header, h.Raw(pid_segment), control_id=control_id, visit_number=extra["visit_number"],
                pi_authority=extra.get("pi_authority") or self.settings["pi_authority"],
                registered=_parse_time(extra.get("sent_at")) or now, now=now)
            self._send(cancel, control_id, "A11", pi)
        now = datetime.now()
        control_id = _control_id(now)
        try:
            self._send(pam.delete_person(header, h.Raw(pid_segment), control_id=control_id, now=now),
                       control_id, "A29", pi)
        except SourceError as err:
            if "rejected" not in str(err):
                raise
            # PAM France has no delete event (its ITI-30 list is exhaustive): say what is left to do.
            raise SourceError(f"{err}; A29 (HL7 v2.5 delete person) is not a PAM France event: remove "
                              f"patient PI {pi} in the receiving system by hand") from None


def _control_id(now: datetime) -> str:
    return f"{now:%Y%m%d%H%M%S}{secrets.randbelow(10_000):04d}"


def _parse_time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


def _check_authority(text: str) -> None:
    parts = text.split("&")
    if len(parts) != 3 or not parts[0].strip() or not _OID.match(parts[1]) or parts[2] != "ISO":
        raise ConfigError(f"seeder 'hl7v2': pi_authority must look like NAME&1.2.250.1.xxx&ISO, not {text!r}")


def _int(value: Any, name: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"seeder 'hl7v2': {name} must be a whole number, not {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"seeder 'hl7v2': {name} must be between {low} and {high}")
    return number


def _float(value: Any, name: str) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ConfigError(f"seeder 'hl7v2': {name} must be a number of seconds, not {value!r}") from None
    if number <= 0:
        raise ConfigError(f"seeder 'hl7v2': {name} must be more than zero")
    return number
