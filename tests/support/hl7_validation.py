"""HL7 v2.5 strict validation (hl7apy) and IHE PAM France checks for the hl7v2 tests.

hl7apy 1.3.5 in strict mode is not a conformance check by itself (read in
``hl7apy/parser.py`` ``parse_segments`` and ``hl7apy/validation.py``
``Validator.validate``):

* with ``find_groups=True`` it silently leaves out every segment it cannot
  place in the message structure: all Z segments, and a standard segment in a
  wrong place. So the message is validated *without* its Z segments, and a
  standard segment missing from the parsed tree is reported;
* ``validate()`` raises only the first error: the report file holds them all;
* table values are warnings only, segment order is not checked.

The Z segments and the rules of the French extension are checked by
``pam_fr_problems``, written from IHE PAM France 2.11.2 (section numbers in
the messages) and Annexe N "IHE France constraints on HL7 data types" 1.8.2.
"""

from __future__ import annotations

import os
import tempfile

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from seeders.hl7v2 import message as h

INS_OIDS = {"1.2.250.1.213.1.4.8": "INS-NIR", "1.2.250.1.213.1.4.9": "INS-NIA",
            "1.2.250.1.213.1.4.10": "INS-NIR-TEST", "1.2.250.1.213.1.4.11": "INS-NIR-DEMO"}
# HL7 table 0445 as IHE PAM France 2.11.2 specialises it (6.6.15): no QUAL, no RECUP.
PAM_FR_0445 = {"VIDE", "PROV", "VALI", "DOUB", "DESA", "DPOT", "DOUA", "COLP", "COLV", "FILI", "CACH",
               "ANOM", "IDVER", "RECD", "IDRA", "USUR", "HOMD", "HOMA", "INVA", "FICT", "DOUT"}
IDENTITY_ATTRIBUTES = {"HOMA", "FICT", "DOUT"}  # "attributs d'identité": extra repetitions, never the status
ZBE9 = {"S", "H", "M", "L", "D", "SM", "SH", "MH", "LD", "HMS", "C"}  # IHE-FRANCE-ZBE-9 (6.13.9)
ZFD5 = {"SM", "CV", "INSI", "CB", "RFID"}  # IHE-FRANCE-ZFD-5 (6.18.5)
ZFD7 = {"AN", "CC", "CE", "CM", "CN", "CS", "LE", "PA", "PC", "TC", "AV", "DC", "AC", "IE"}  # 6.18.7
ITI_30 = {"A28", "A31", "A47", "A40", "A24", "A37"}  # 2.1, with the optional link/unlink
ITI_31 = {"A01", "A04", "A11", "A03", "A13", "A05", "A38", "A06", "A07", "A02", "A12", "A54", "A55", "A21",
          "A52", "A22", "A53", "A44", "A14", "A27", "A16", "A25", "Z99"}
WITH_ZFD = {"A01", "A04", "A05", "A14", "A28", "A31"}  # 6.18


def _segments(text: str) -> list[str]:
    return [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]


def _names(node) -> list[str]:
    names = []
    for child in node.children:
        names += [child.name] if child.classname == "Segment" else _names(child)
    return names


def hl7apy_problems(text: str) -> list[str]:
    """Errors of hl7apy strict validation of the message without its Z segments."""
    standard = [s for s in _segments(text) if not s.startswith("Z")]
    try:
        parsed = parse_message("\r".join(standard) + "\r", validation_level=VALIDATION_LEVEL.STRICT,
                               find_groups=True)
    except Exception as err:  # strict parsing refuses some content outright
        return [f"parse_message: {type(err).__name__}: {err}"]
    kept, problems = _names(parsed), []
    for segment in standard:
        if segment[:3] in kept:
            kept.remove(segment[:3])
        else:
            problems.append(f"{segment[:3]} is not where the {parsed.name} structure allows it (hl7apy dropped it)")
    fd, report = tempfile.mkstemp(suffix=".txt")
    os.close(fd)
    try:
        try:
            parsed.validate(report_file=report)
        except Exception:  # the first error; the report has them all
            pass
        with open(report, encoding="utf-8") as handle:
            problems += [line[7:].rstrip() for line in handle if line.startswith("Error: ")]
    finally:
        os.unlink(report)
    return problems


def pam_fr_problems(text: str, version: str = "2.11") -> list[str]:
    """What IHE PAM France ``version`` (2.11, or 2.10) forbids in this ADT message; empty when fine."""
    message = h.parse(text)
    msh, pid = message.first("MSH"), message.first("PID")
    event = msh.get(9, 2)
    problems: list[str] = []
    if msh.get(9, 1) != "ADT":
        return problems
    if event not in ITI_30 | ITI_31:
        problems.append(f"MSH-9 event {event} is not in the PAM France ITI-30/ITI-31 lists (2.1, 2.2)")
    if msh.raw(12) != f"2.5^FRA^{version}":
        problems.append(f"MSH-12 {msh.raw(12)!r}: PAM France {version} is 2.5^FRA^{version} (6.5)")
    declaration = f"{version}^IHE_FRANCE-{version}-PAM" if version != "2.10" else ""  # MSH-21 is new in 2.11
    if msh.raw(21) != declaration:
        problems.append(f"MSH-21 {msh.raw(21)!r}: the conformance declaration is {declaration!r} (6.5)")
    if msh.get(18) not in ("UNICODE UTF-8", "8859/15", "8859/1"):
        problems.append(f"MSH-18 {msh.get(18)!r}: UNICODE UTF-8 or 8859/15 (6.1)")
    if pid is None:
        return problems + ["no PID segment"]
    statuses = pid.repetitions(32)
    ins = [rep for rep in pid.repetitions(3) if h.part(rep, 4, 2) in INS_OIDS]
    if not statuses:
        problems.append("PID-32 empty: R [1..*] (6.6.15)")
    elif [s for s in statuses if s not in PAM_FR_0445] or statuses[0] in IDENTITY_ATTRIBUTES:
        problems.append(f"PID-32 {statuses}: the status must come first, from table 0445 France (6.6.15)")
    for rep in ins:
        if h.part(rep, 5) != "INS" or h.part(rep, 4, 3) != "ISO" or len(h.part(rep, 1)) != 15:
            problems.append(f"PID-3 INS {rep!r}: NIR+key (15)^^^ASIP-SANTE-INS-NIR&OID&ISO^INS (Annexe N, CX)")
    if ins:
        if "VALI" not in statuses:
            problems.append("PID-3 carries the INS but PID-32 is not VALI: receivers drop the INS (6.6.1, 6.6.15)")
        names = {h.part(rep, 7): rep for rep in pid.repetitions(5)}
        if "L" not in names or not pid.get(7) or pid.get(8) not in ("M", "F", "U"):
            problems.append("with the INS: birth name (XPN-7 L), PID-7 and PID-8 are required (6.6.2-6.6.5)")
        if "D" in names and h.part(names["D"], 1) == h.part(names.get("L", ""), 1):
            problems.append("PID-5 type D repeats the birth name: D is sent only when defined (6.6.2)")
        bdl = [rep for rep in pid.repetitions(11) if h.part(rep, 7) == "BDL"]
        if not bdl or not h.part(bdl[0], 9):
            problems.append("with the INS: PID-11 birthplace (BDL) with its INSEE code in XAD-9 (Annexe N, XAD)")
        if event in WITH_ZFD:
            problems += _zfd_problems(message.first("ZFD"))
    if event in ITI_31 and event != "Z99":
        if not pid.get(18):
            problems.append("PID-18 empty: the account number (NDA) is mandatory for ITI-31 (6.6.9)")
        zbe = message.first("ZBE")
        if zbe is None:
            problems.append("no ZBE segment: R [1..1] for ITI-31 movements (6.13)")
        elif zbe.get(9) not in ZBE9:
            problems.append(f"ZBE-9 {zbe.get(9)!r}: R [1..1], table IHE-FRANCE-ZBE-9 (6.13.9)")
        elif zbe.get(4) not in ("INSERT", "UPDATE", "CANCEL") or not zbe.get(1) or not zbe.get(2):
            problems.append("ZBE-1, ZBE-2 and ZBE-4 (INSERT/UPDATE/CANCEL) are required (6.13)")
    return problems


def _zfd_problems(zfd: h.Segment | None) -> list[str]:
    if zfd is None:
        return ["no ZFD segment: ZFD-5 (INSI), ZFD-6 (INSi query date), ZFD-7 (document) are RE with the INS (6.18)"]
    problems = []
    if zfd.get(4) not in ("Y", "N"):
        problems.append(f"ZFD-4 {zfd.get(4)!r}: Y or N (6.18.4)")
    if zfd.get(5) != "INSI":
        problems.append(f"ZFD-5 {zfd.get(5)!r}: an INS is obtained from the INSi teleservice, INSI (6.18.5)")
    if len(zfd.get(6)) < 8 or not zfd.get(6).isdigit():
        problems.append(f"ZFD-6 {zfd.get(6)!r}: the INSi query date, a TS (6.18.6)")
    if zfd.get(7) not in ZFD7:
        problems.append(f"ZFD-7 {zfd.get(7)!r}: table IHE-FRANCE-ZFD-7 (6.18.7)")
    return problems


def problems(text: str, version: str = "2.11") -> list[str]:
    """hl7apy strict (without Z segments) and PAM France problems of one message."""
    return hl7apy_problems(text) + pam_fr_problems(text, version)
