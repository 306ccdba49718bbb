"""How one FHIR server's patients are written, learned from its most recent ones.

The seeder reads the latest Patients (``_sort=-_lastUpdated``; never
writes) and learns what FR Core leaves open: the hospital's patient-number
(PI) system and shape, capitals in names, the phone format, and elements
every recent patient carries the same way (profile, identity reliability,
managing organization, INSEE code on addresses). A new server with no
patient gets FR Core's own writing: INS traits in unaccented capitals,
phones as "06 12 34 56 78".
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

from seeders.fhir.patient import (CS_IDENTITY_STATUS, HL7_V2_0203, IDENTITY_RELIABILITY_URL, INS_SYSTEM,
                                  INSEE_CODE_URL)
from seeders.common.writings import phone_style

SAMPLE = 50
MIN_SAMPLE = 10
SHARE = 0.5  # a convention is followed when at least half the recent patients follow it
_NUMBERED = re.compile(r"^(\D*)(\d+)$")
# Used when the host gives no example: an 8-digit IPP.
DEFAULT_PI_DIGITS = 8


@dataclass
class FhirConventions:
    sample_size: int = 0
    official_upper: bool = True  # INSi returns traits in capitals without accents
    official_plain: bool = True
    usual_upper: bool = False
    phone_style: str = "spaced"
    address_insee: bool = False
    active: bool | None = None
    meta_profile: tuple[str, ...] = ()
    identity_status: str = "VALI"  # the qualified code: VALI (FR Core <= 2.2.0) or QUAL (after PR #306)
    reliability_parts: tuple[dict[str, Any], ...] = ()  # the host's other identityReliability sub-extensions
    reliability_dated: bool = True  # write validationDate (FR Core's examples do)
    managing_organization: dict[str, Any] | None = None
    ins_template: dict[str, Any] | None = None  # the host's INS identifier, without its value
    pi_system: str | None = None
    pi_template: dict[str, Any] | None = None
    pi_values: tuple[str, ...] = ()
    general_practitioners: tuple[dict[str, Any], ...] = ()  # as often as the host uses each

    def new_pi(self, rnd: random.Random) -> str:
        """A patient number shaped like the host's, inside the range it has already used.

        A hospital numbers IPPs upwards; a number below the highest one seen
        is never handed out again, so the canary cannot take a future
        patient's number.
        """
        numbered = [m for m in (_NUMBERED.match(v) for v in self.pi_values) if m]
        if not numbered:
            return str(rnd.randrange(10 ** (DEFAULT_PI_DIGITS - 1), 10 ** DEFAULT_PI_DIGITS))
        prefix, _ = _modal(m.group(1) for m in numbered)
        width, _ = _modal(len(m.group(2)) for m in numbered)
        numbers = sorted(int(m.group(2)) for m in numbered if m.group(1) == prefix)
        low, high = numbers[0], numbers[-1]
        if high - low < 10 * len(numbers):  # too tight a range to hide in: go below it
            low = max(10 ** (width - 1), high - 1000 * max(len(numbers), 1))
        taken = set(numbers)
        for _ in range(100):
            number = rnd.randint(low, high)
            if number not in taken:
                return f"{prefix}{number:0{width}d}"
        return f"{prefix}{high + 1:0{width}d}"


def learn(patients: list[dict[str, Any]], pi_system: str | None) -> FhirConventions:
    """Conventions of these recent Patients; ``pi_system`` None means: the one they use."""
    conv = FhirConventions(sample_size=len(patients), pi_system=pi_system)
    pis = [i for p in patients for i in p.get("identifier") or () if _is_pi(i)
           and (pi_system is None or i.get("system") == pi_system)]
    if pis:
        conv.pi_system = pi_system or _modal(i.get("system") for i in pis)[0]
        same = [i for i in pis if i.get("system") == conv.pi_system]
        conv.pi_template = _without_value(_modal_json(same))
        conv.pi_values = tuple(str(i.get("value", "")) for i in same)
    if len(patients) < MIN_SAMPLE:
        return conv
    official = [n for p in patients for n in p.get("name") or () if n.get("use") == "official"]
    families = [n["family"] for n in official if _letters(n.get("family"))]
    if families:
        conv.official_upper = _share(families, str.isupper) >= SHARE
        conv.official_plain = conv.official_upper and all(f.isascii() for f in families)
    usual = [n["family"] for p in patients for n in p.get("name") or ()
             if n.get("use") == "usual" and _letters(n.get("family"))]
    conv.usual_upper = _share(usual, str.isupper) >= SHARE
    phones = [t["value"] for p in patients for t in p.get("telecom") or () if t.get("system") == "phone"
              and isinstance(t.get("value"), str)]
    style, share = _modal(s for s in (phone_style(v) for v in phones) if s)
    if style and share >= SHARE:
        conv.phone_style = style
    addresses = [a for p in patients for a in p.get("address") or ()]
    conv.address_insee = _share(addresses, lambda a: any(
        e.get("url") == INSEE_CODE_URL for e in a.get("extension") or ())) >= SHARE
    conv.active = _common(patients, lambda p: p.get("active"))
    profile = _common(patients, lambda p: tuple((p.get("meta") or {}).get("profile") or ()) or None)
    conv.meta_profile = profile or ()
    _learn_reliability(conv, patients)
    conv.managing_organization = _common_json(patients, lambda p: p.get("managingOrganization"))
    conv.ins_template = _without_value(_common_json(patients, lambda p: next(
        (i for i in p.get("identifier") or () if i.get("system") == INS_SYSTEM), None)))
    gps = [p["generalPractitioner"][0] for p in patients if p.get("generalPractitioner")]
    if len(gps) >= SHARE * len(patients):
        conv.general_practitioners = tuple(gps)
    return conv


def _is_pi(identifier: dict[str, Any]) -> bool:
    return any(c.get("system") == HL7_V2_0203 and c.get("code") == "PI"
               for c in (identifier.get("type") or {}).get("coding") or ())


def _letters(text: Any) -> bool:
    return isinstance(text, str) and any(ch.isalpha() for ch in text)


def _share(items: Iterable[Any], test) -> float:
    items = list(items)
    return sum(1 for i in items if test(i)) / len(items) if items else 0.0


def _modal(values: Iterable[Any]) -> tuple[Any, float]:
    counts = Counter(values)
    if not counts:
        return None, 0.0
    value, n = counts.most_common(1)[0]
    return value, n / sum(counts.values())


def _common(patients: list[dict[str, Any]], get) -> Any:
    """The value at least half the patients share, or None."""
    value, share = _modal(get(p) for p in patients)
    return value if share >= SHARE else None


def _modal_json(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    shapes = [json.dumps(_without_value(i), sort_keys=True) for i in items]
    shape, _ = _modal(shapes)
    return json.loads(shape) if shape else None


def _common_json(patients: list[dict[str, Any]], get) -> dict[str, Any] | None:
    value = _common(patients, lambda p: json.dumps(get(p), sort_keys=True) if get(p) else None)
    return json.loads(value) if value else None


def _without_value(identifier: dict[str, Any] | None) -> dict[str, Any] | None:
    if not identifier:
        return None
    return {k: v for k, v in identifier.items() if k not in ("value", "system", "id", "period")}


def _learn_reliability(conv: FhirConventions, patients: list[dict[str, Any]]) -> None:
    """How most patients write identityReliability: its code system and other sub-extensions.

    The status itself is not learned, only its code system: a canary carries
    an INS, so it is always the qualified code of that system.
    """
    def reliability(p: dict[str, Any]) -> dict[str, Any] | None:
        return next((e for e in p.get("extension") or () if e.get("url") == IDENTITY_RELIABILITY_URL), None)

    def shape(p: dict[str, Any]) -> list[dict[str, Any]] | None:
        ext = reliability(p)
        if ext is None:
            return None
        return [e for e in ext.get("extension") or () if e.get("url") not in ("identityStatus", "validationDate")]

    carried = [ext for ext in (reliability(p) for p in patients) if ext is not None]
    if len(carried) < SHARE * len(patients):
        return
    systems = [(s.get("valueCoding") or {}).get("system") for ext in carried for s in ext.get("extension") or ()
               if s.get("url") == "identityStatus"]
    system, _ = _modal(systems)
    conv.identity_status = "QUAL" if system == CS_IDENTITY_STATUS else "VALI"
    parts = _common(patients, lambda p: json.dumps(shape(p), sort_keys=True) if shape(p) is not None else None)
    conv.reliability_parts = tuple(json.loads(parts)) if parts else ()
    conv.reliability_dated = _share(carried, lambda ext: any(
        e.get("url") == "validationDate" for e in ext.get("extension") or ())) >= SHARE
