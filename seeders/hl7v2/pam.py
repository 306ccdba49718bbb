"""ADT messages of IHE PAM with the French national extension (PAM FR 2.10/2.11).

What a French identity server (GAM) sends downstream, for one Identity
(section numbers are those of IHE PAM France 2.11.2, Interop-Sante/ihe.iti.pam.fr):

* MSH-9 ``ADT^A28^ADT_A05`` (add person, ITI-30) or ``ADT^A04^ADT_A01``
  (register an outpatient, ITI-31); MSH-12 ``2.5^FRA^2.11`` and, from 2.11
  on, the conformance declaration MSH-21 ``2.11^IHE_FRANCE-2.11-PAM`` (6.5);
  MSH-17 ``FRA``; MSH-18 ``UNICODE UTF-8``.
* PID-3: the PI (IPP) under the sender's assigning authority, and the INS:
  ``NIR^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS``.
* PID-5: the used name (type ``D``) only when one is defined (6.6.2: a married
  name), then the birth name (type ``L``) with the first given name in XPN-2
  and every birth first name in XPN-3, upper case without accents as the INS
  strict traits are written.
* PID-7 ``YYYYMMDD``, PID-8 ``M``/``F``, PID-11 home address (``H``) and
  birthplace (``BDL``, INSEE code in XAD-9), PID-13 phones (``PRN^CP`` mobile,
  ``PRN^PH`` landline, national writing in XTN-12) and e-mail
  (``NET^Internet``), PID-23 birth city, PID-32 identity reliability
  ``VALI``. PAM France's table 0445 (6.6.15) has no QUAL or RECUP: the INS is
  sent "uniquement si l'identité du patient a été qualifiée [...], ce qui se
  traduit par PID.32 = VALI" (6.6.1); a receiver drops an INS sent with
  anything else. (QUAL/RECUP exist only in FHIR FR Core's identity-status
  code system, see docs/seeders/fhir.md.)
* ZFD (6.18, for A28 and A04): how the identity was obtained, RE when the INS
  is sent: ZFD-4 birth date corrected ``N``, ZFD-5 ``INSI`` (INSi
  teleservice), ZFD-6 the INSi query time, ZFD-7 the identity document
  checked (``CN``, national identity card), ZFD-8 its end of validity.
* A04 adds PID-18, the account number (NDA, mandatory for ITI-31 in France,
  6.6.9), PV1 (class ``O``, visit number in PV1-19) and the ZBE movement
  segment with ZBE-9, the nature of the movement (R, 6.13.9: ``HMS``, the
  three responsibilities start together); A28 has the pseudo PV1 ``PV1||N``.

Retiring: an A04 is first cancelled with A11 (``ADT_A09``, ZBE action
``CANCEL``), which PAM France lists (5.3.2). The person is then deleted with
A29 (delete person information, ``ADT_A21``), which HL7 v2.5 defines as the
event that "undoes an A28" (3.3.29). PAM France has no deletion: its ITI-30
list (2.1: A28, A31, A47, A40) is exhaustive, so a receiver that knows only
those may reject A29; the seeder then says which PI to remove by hand. (A23,
"delete a patient record", removes visit data, not a person, in HL7 v2.5.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from canary.model import INS_NIR_OID, Identity, Sex
from seeders.hl7v2 import message as h
from seeders.common.transforms import strip_accents

INS_AUTHORITY = ("ASIP-SANTE-INS-NIR", INS_NIR_OID, "ISO")
RELIABILITY_QUALIFIED = "VALI"
PAM_VERSIONS = ("2.10", "2.11")
# ZBE-9 (IHE-FRANCE-ZBE-9): the care, lodging and medical responsibilities all start with the visit.
MOVEMENT_NATURE = "HMS"
# ZFD-5 / ZFD-7: identity obtained from the INSi teleservice, checked on a national identity card.
IDENTITY_SOURCE = "INSI"
IDENTITY_DOCUMENT = "CN"

# event -> (MSH-9 message structure, IHE transaction)
STRUCTURES = {"A28": "ADT_A05", "A04": "ADT_A01", "A29": "ADT_A21", "A11": "ADT_A09"}
PLANT_EVENTS = ("A28", "A04")


@dataclass(frozen=True, slots=True)
class Header:
    """MSH values that stay the same for every message of one source."""

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    pam_version: str = "2.11"


def hl7_time(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S")


def authority(text: str) -> tuple[str, ...]:
    """"NAME&OID&ISO" as an HD tuple (already validated by the seeder)."""
    return tuple(text.split("&"))


def msh(header: Header, event: str, control_id: str, now: datetime) -> str:
    return h.segment("MSH", {
        3: header.sending_application,
        4: header.sending_facility,
        5: header.receiving_application,
        6: header.receiving_facility,
        7: hl7_time(now),
        9: ["ADT", event, STRUCTURES[event]],
        10: control_id,
        11: "P",
        12: ["2.5", "FRA", header.pam_version],
        17: "FRA",
        18: "UNICODE UTF-8",
        21: conformance(header.pam_version),
    })


def conformance(pam_version: str) -> list[str] | None:
    """MSH-21, the conformance declaration PAM France asks for since 2.11 (6.5)."""
    if pam_version == "2.10":
        return None
    return [pam_version, f"IHE_FRANCE-{pam_version}-PAM"]


def _strict(text: str) -> str:
    """INS strict-trait writing: upper case, no accents or ligatures."""
    return strip_accents(text).upper()


def _civility(identity: Identity) -> str:
    return "MME" if identity.sex is Sex.FEMALE else "M"


def _phone(e164: str) -> h.Raw:
    national = "0" + e164[3:] if e164.startswith("+33") else e164
    use = "CP" if national[:2] in ("06", "07") else "PH"
    return h.Raw(h.field(["", "PRN", use, "", "", "", "", "", "", "", "", national]))


def pid(identity: Identity, pi: str, pi_authority: str, account_number: str = "") -> str:
    first = _strict(identity.first_name)
    birthplace = identity.birthplace
    if birthplace.abroad:
        bdl = ["", "", "", "", "", "", "BDL", "", birthplace.insee_code]
    else:
        bdl = ["", "", birthplace.name, "", "", "FRA", "BDL", "", birthplace.insee_code]
    address = identity.address
    phones = [_phone(identity.phone)] + ([_phone(identity.phone2)] if identity.phone2 else [])
    return h.segment("PID", {
        1: "1",
        3: h.repeated(
            [pi, "", "", authority(pi_authority), "PI"],
            [identity.nir, "", "", INS_AUTHORITY, "INS"],
        ),
        5: h.repeated(
            [_strict(identity.last_name), first, "", "", _civility(identity), "", "D"]
            if identity.married_name_used else None,
            [_strict(identity.birth_name), first, " ".join(_strict(n) for n in identity.first_names),
             "", "" if identity.married_name_used else _civility(identity), "", "L"],
        ),
        7: identity.birth_date.strftime("%Y%m%d"),
        8: identity.sex.value,
        11: h.repeated(
            [address.line1, address.line2, address.city, "", address.postcode, "FRA", "H"],
            bdl,
        ),
        13: h.repeated(*phones, ["", "NET", "Internet", identity.email]),
        18: [account_number, "", "", authority(pi_authority), "AN"] if account_number else None,
        23: birthplace.name,
        32: RELIABILITY_QUALIFIED,
    })


def evn(now: datetime, event: str) -> str:
    fields: dict[int, h.FieldValue] = {2: hl7_time(now)}
    if event in ("A04", "A11"):
        fields[6] = hl7_time(now)  # event occurred: the movement's date
    return h.segment("EVN", fields)


def pv1_identity_only() -> str:
    return h.segment("PV1", {2: "N"})  # A28/A29: "not applicable" pseudo visit


def pv1_outpatient(visit_number: str, pi_authority: str, now: datetime) -> str:
    return h.segment("PV1", {
        1: "1",
        2: "O",
        19: [visit_number, "", "", authority(pi_authority), "VN"],
        44: hl7_time(now),
    })


def zbe(movement_id: str, pi_authority: str, started: datetime, action: str,
        original_event: str = "") -> str:
    name, oid, kind = (authority(pi_authority) + ("", "", ""))[:3]
    return h.segment("ZBE", {
        1: [movement_id, name, oid, kind],
        2: hl7_time(started),
        4: action,
        5: "N",
        6: original_event,
        9: MOVEMENT_NATURE,
    })


def zfd(identity: Identity, now: datetime) -> str:
    """How the identity was obtained: from INSi, checked on an identity card still valid.

    The card's end of validity is drawn from the NIR, so it is the same at
    every plant of one identity and differs between identities.
    """
    valid_until = now.date().replace(year=now.year + 1 + int(identity.nir[-2:]) % 9, day=1)
    return h.segment("ZFD", {
        4: "N",
        5: IDENTITY_SOURCE,
        6: hl7_time(now),
        7: IDENTITY_DOCUMENT,
        8: valid_until.strftime("%Y%m%d"),
    })


def add_person(header: Header, identity: Identity, *, event: str, control_id: str, pi: str,
               pi_authority: str, visit_number: str, now: datetime, account_number: str = "") -> str:
    """The A28 or A04 message that creates this identity downstream."""
    account = account_number if event == "A04" else ""
    segments = [msh(header, event, control_id, now), evn(now, event), pid(identity, pi, pi_authority, account)]
    if event == "A04":
        segments.append(pv1_outpatient(visit_number, pi_authority, now))
        segments.append(zbe(visit_number, pi_authority, now, "INSERT"))
    else:
        segments.append(pv1_identity_only())
    segments.append(zfd(identity, now))
    return h.message(*segments)


def cancel_visit(header: Header, pid_segment: str, *, control_id: str, visit_number: str,
                 pi_authority: str, registered: datetime, now: datetime) -> str:
    """A11: cancel the outpatient registration an A04 made."""
    return h.message(
        msh(header, "A11", control_id, now), evn(now, "A11"), pid_segment,
        pv1_outpatient(visit_number, pi_authority, registered),
        zbe(visit_number, pi_authority, registered, "CANCEL", "A04"),
    )


def delete_person(header: Header, pid_segment: str, *, control_id: str, now: datetime) -> str:
    """A29: delete the person the PID identifies (same PID as sent at plant time)."""
    return h.message(msh(header, "A29", control_id, now), evn(now, "A29"), pid_segment,
                     pv1_identity_only())
