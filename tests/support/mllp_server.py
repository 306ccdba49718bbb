"""A test MLLP receiver that checks IHE PAM France conventions, like a strict EHR.

Three pieces, as for the other test servers:

* ``PamReceiver`` is the handler: it parses one message, validates it, acts
  (stores persons for A28/A04, forgets them for A29, cancels visits for A11)
  and returns the ACK text. It can be told to answer AR, AE, or nothing.
* ``_Connection`` is the protocol: MLLP framing over one TCP connection,
  written here independently of ``seeders/hl7v2/mllp.py`` so framing bugs in the
  client are not hidden by shared code.
* ``MllpServer`` is the controller: binds 127.0.0.1 port 0, serves in a
  thread, ``start()`` / ``stop()`` (also a context manager).

The parsing uses ``seeders.hl7v2.message`` (escaping is tested on its own).
Every message is also checked like a strict PAM France receiver would
(support/hl7_validation.py): hl7apy strict HL7 v2.5 without the Z segments,
then the French extension's rules (MSH-12/21, PID-32, ZFD, ZBE-9, PID-18...);
the first problem is answered AE with its location in ERR-2.
"""

from __future__ import annotations

import re
import socketserver
import threading
from dataclasses import dataclass, field
from datetime import datetime

from seeders.hl7v2 import message as h
from support import hl7_validation

INS_AUTHORITY = "ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO"
STRUCTURES = {"A28": "ADT_A05", "A04": "ADT_A01", "A29": "ADT_A21", "A11": "ADT_A09"}
RELIABILITY = {"VIDE", "PROV", "VALI", "DOUB", "DESA", "DPOT", "DOUA", "COLP", "COLV", "FILI",
               "CACH", "ANOM", "IDVER", "RECD", "IDRA", "USUR", "HOMD", "INVA", "HOMA", "FICT", "DOUT"}
_HD = re.compile(r"^[^&]+&[0-2](\.[0-9]+)+&ISO$")


class Rejected(Exception):
    """Validation failed: answer AE (or AR: an event this receiver does not handle) with an ERR segment."""

    def __init__(self, location: str, code: str, text: str, ack: str = "AE") -> None:
        super().__init__(text)
        self.location, self.code, self.text, self.ack = location, code, text, ack


@dataclass
class Person:
    pi: str
    ins: str
    birth_name: str
    used_name: str
    first_names: str
    birth_date: str
    sex: str
    address: str
    phones: list[str]
    email: str
    reliability: str


@dataclass
class PamReceiver:
    """The handler. ``mode``: "normal", "AE", "AR" (answer that to everything) or "silent".

    ``pam_version``: the PAM France version the receiver speaks. ``accept_a29``:
    False for a receiver that knows only PAM France's events, which have no
    deletion; it answers AR to A29.
    """

    mode: str = "normal"
    pam_version: str = "2.11"
    accept_a29: bool = True
    accept_results: bool = True  # False: ORU^R01 answered AR (an interface without results)
    persons: dict[str, Person] = field(default_factory=dict)
    visits: dict[str, str] = field(default_factory=dict)  # visit number -> PI
    results: dict[str, tuple[str, list[tuple[str, str]]]] = field(default_factory=dict)  # filler -> (PI, OBX)
    received: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, text: str) -> str | None:
        with self.lock:
            self.received.append(text)
            try:
                message = h.parse(text)
            except h.ParseError as err:
                return _ack(None, "AR", "MSH", "200", f"unparseable message: {err}")
            if self.mode == "silent":
                return None
            if self.mode == "AR":
                return _ack(message, "AR", "MSH-9", "200", "unsupported event for this interface")
            if self.mode == "AE":
                return _ack(message, "AE", "PID-3", "207", "application internal error: database locked")
            try:
                self._act(message, text)
            except Rejected as err:
                return _ack(message, err.ack, err.location, err.code, err.text)
            return _ack(message, "AA")

    def _act(self, message: h.Message, text: str) -> None:
        msh = message.first("MSH")
        event, structure = msh.get(9, 2), msh.get(9, 3)
        if msh.raw(9) == "ORU^R01^ORU_R01":
            if not self.accept_results:
                raise Rejected("MSH-9", "200", "this interface takes no results", ack="AR")
            self._conforms(text)
            return self._results(message)
        if msh.get(9, 1) != "ADT" or STRUCTURES.get(event) != structure:
            raise Rejected("MSH-9", "200", f"unsupported message type {msh.raw(9)}")
        if event == "A29" and not self.accept_a29:
            raise Rejected("MSH-9", "200", "A29 is not a PAM France event", ack="AR")
        if msh.raw(12) != f"2.5^FRA^{self.pam_version}":
            raise Rejected("MSH-12", "203", f"expected 2.5^FRA^{self.pam_version}, got {msh.raw(12)}")
        self._conforms(text)
        if not msh.get(10):
            raise Rejected("MSH-10", "101", "message control id missing")
        if message.first("EVN") is None or not message.first("EVN").get(2):
            raise Rejected("EVN-2", "101", "EVN-2 recorded date/time missing")
        pid = message.first("PID")
        if pid is None:
            raise Rejected("PID", "100", "PID segment missing")
        pi = _identifier(pid, "PI")
        if not pi:
            raise Rejected("PID-3", "101", "no PI with an assigning authority NAME&OID&ISO")
        if event in ("A28", "A04"):
            self._add(message, pid, pi, event)
        elif event == "A11":
            self._cancel(message, pi)
        else:  # A29
            if pi not in self.persons:
                raise Rejected("PID-3", "204", f"unknown patient {pi}")
            if any(owner == pi for owner in self.visits.values()):
                raise Rejected("PID-3", "207", f"patient {pi} still has an open visit: cancel it first")
            if any(owner == pi for owner, _ in self.results.values()):
                raise Rejected("PID-3", "207", f"patient {pi} still has results: delete them first")
            del self.persons[pi]

    def _conforms(self, text: str) -> None:
        problems = [p for p in hl7_validation.problems(text, self.pam_version)
                    if not (self.accept_a29 and p.startswith("MSH-9 event A29 "))]
        if problems:
            location = problems[0].split(" ")[0]
            raise Rejected(location if re.fullmatch(r"[A-Z][A-Z0-9]{2}(-[0-9]+)?", location) else "MSH",
                           "207", problems[0])

    def _add(self, message: h.Message, pid: h.Segment, pi: str, event: str) -> None:
        ins = _identifier(pid, "INS", INS_AUTHORITY)
        if not ins:
            raise Rejected("PID-3", "101", "no INS-NIR (ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS)")
        if not _nir_ok(ins):
            raise Rejected("PID-3", "102", f"INS-NIR {ins} has a wrong key")
        names = {h.part(rep, 7): rep for rep in pid.repetitions(5)}
        if "L" not in names or not h.part(names["L"], 1) or not h.part(names["L"], 2):
            raise Rejected("PID-5", "101", "no birth name (type L) with its first given name")
        if not re.fullmatch(r"[0-9]{8}", pid.get(7)):
            raise Rejected("PID-7", "102", f"birth date must be YYYYMMDD, not {pid.get(7)!r}")
        if pid.get(8) not in ("M", "F", "U"):
            raise Rejected("PID-8", "102", f"administrative sex must be M, F or U, not {pid.get(8)!r}")
        reliability = pid.get(32)
        if reliability not in RELIABILITY:
            raise Rejected("PID-32", "103", f"identity reliability code {reliability!r} unknown")
        if reliability != "VALI":
            raise Rejected("PID-32", "207", "an INS may only be sent with a qualified identity (VALI)")
        addresses = {h.part(rep, 7): rep for rep in pid.repetitions(11)}
        if "BDL" not in addresses or not h.part(addresses["BDL"], 9):
            raise Rejected("PID-11", "101", "birthplace (BDL) without its INSEE code in XAD-9")
        if pi in self.persons:
            raise Rejected("PID-3", "205", f"patient {pi} already exists")
        if event == "A04":
            pv1, zbe = message.first("PV1"), message.first("ZBE")
            visit = pv1.get(19) if pv1 else ""
            if not pv1 or pv1.get(2) != "O" or not visit:
                raise Rejected("PV1-19", "101", "an A04 needs PV1-2 = O and a visit number")
            if zbe is None or zbe.get(4) != "INSERT":
                raise Rejected("ZBE", "100", "an A04 needs a ZBE segment with action INSERT")
            self.visits[visit] = pi
        telecoms = pid.repetitions(13)
        self.persons[pi] = Person(
            pi=pi, ins=ins, birth_name=h.part(names["L"], 1),
            used_name=h.part(names.get("D", names["L"]), 1), first_names=h.part(names["L"], 3),
            birth_date=pid.get(7), sex=pid.get(8), address=h.part(addresses.get("H", ""), 1),
            phones=[h.part(t, 12) for t in telecoms if h.part(t, 2) == "PRN"],
            email=next((h.part(t, 4) for t in telecoms if h.part(t, 2) == "NET"), ""),
            reliability=reliability,
        )

    def _results(self, message: h.Message) -> None:
        """ORU^R01: store final results, or delete them (every OBX-11 D, OBR-25 C)."""
        pi = _identifier(message.first("PID"), "PI")
        if pi not in self.persons:
            raise Rejected("PID-3", "204", f"results for unknown patient {pi!r}")
        filler, obr = message.first("OBR").get(3), message.first("OBR")
        statuses = {obx.get(11) for obx in message.all("OBX")}
        observations = [(obx.get(3), obx.get(5)) for obx in message.all("OBX")]
        if statuses == {"F"} and obr.get(25) == "F":
            if filler in self.results:
                raise Rejected("OBR-3", "205", f"order {filler} already has results")
            self.results[filler] = (pi, observations)
        elif statuses == {"D"} and obr.get(25) == "C":
            if self.results.get(filler, ("", []))[0] != pi:
                raise Rejected("OBR-3", "204", f"no results of order {filler} for patient {pi}")
            del self.results[filler]
        else:
            raise Rejected("OBX-11", "103", f"result statuses {sorted(statuses)} with OBR-25 {obr.get(25)!r}")

    def _cancel(self, message: h.Message, pi: str) -> None:
        pv1, zbe = message.first("PV1"), message.first("ZBE")
        visit = pv1.get(19) if pv1 else ""
        if self.visits.get(visit) != pi:
            raise Rejected("PV1-19", "204", f"unknown visit {visit} for patient {pi}")
        if zbe is None or zbe.get(4) != "CANCEL" or zbe.get(6) != "A04":
            raise Rejected("ZBE", "207", "an A11 needs a ZBE with action CANCEL of an A04")
        del self.visits[visit]


def _identifier(pid: h.Segment, kind: str, authority: str | None = None) -> str:
    for rep in pid.repetitions(3):
        comps = h.components(rep)
        hd = comps[3] if len(comps) > 3 else ""
        if h.part(rep, 5) == kind and _HD.match(hd) and (authority is None or hd == authority):
            return h.part(rep, 1)
    return ""


def _nir_ok(nir: str) -> bool:
    if len(nir) != 15:
        return False
    body = nir[:13].upper().replace("2A", "19").replace("2B", "18")
    return body.isdigit() and 97 - int(body) % 97 == int(nir[13:])


def _ack(message: h.Message | None, code: str, location: str = "", error: str = "",
         text: str = "") -> str:
    msh = message.first("MSH") if message else None
    event = msh.get(9, 2) if msh else ""
    control = msh.get(10) if msh else ""
    segments = [
        h.segment("MSH", {
            3: msh.get(5) if msh else "EHR", 4: msh.get(6) if msh else "",
            5: msh.get(3) if msh else "", 6: msh.get(4) if msh else "",
            7: datetime.now().strftime("%Y%m%d%H%M%S"), 9: ["ACK", event, "ACK"],
            10: f"ACK{control}", 11: "P", 12: h.Raw(msh.raw(12)) if msh else "2.5",  # the version it answers
        }),
        h.segment("MSA", {1: code, 2: control}),
    ]
    if code != "AA":
        seg, _, number = location.partition("-")
        segments.append(h.segment("ERR", {
            2: [seg, "1", number] if number else [seg],
            3: [error, "error", "HL70357"], 4: "E", 8: text,
        }))
    return h.message(*segments)


# -- protocol and controller -------------------------------------------------------


class _Connection(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = self.request.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\x0b" in buffer and b"\x1c\x0d" in buffer:
                start = buffer.index(b"\x0b")
                end = buffer.index(b"\x1c\x0d", start)
                text = buffer[start + 1:end].decode("utf-8")
                buffer = buffer[end + 2:]
                reply = self.server.receiver.handle(text)  # type: ignore[attr-defined]
                if reply is not None:
                    self.request.sendall(b"\x0b" + reply.encode("utf-8") + b"\x1c\x0d")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


class MllpServer:
    def __init__(self, receiver: PamReceiver | None = None) -> None:
        self.receiver = receiver or PamReceiver()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"mllp://127.0.0.1:{self.port}"

    def start(self) -> "MllpServer":
        server = _Server(("127.0.0.1", 0), _Connection)  # bind errors raise here
        server.receiver = self.receiver  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="mllp-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "MllpServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
