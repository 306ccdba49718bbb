"""Phone checks of `canary audit`: what a number lookup tells an attacker.

libphonenumber attributes French mobile blocks to operators
(``phonenumbers.carrier``), from each block's original allocation: a ported
number keeps its block's carrier, and that is what any lookup shows. Which
operators mark a number as virtual, a machine or a company line is our own
classification (``CARRIER_KINDS``), based on what each operator sells; a
block attributed to a cloud-telephony provider is the surest giveaway.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Sequence

from canary.audit.rules import Finding, Severity, canary_ids, examples

# substring of the carrier name (lower case) -> (kind, what it is)
CARRIER_KINDS: dict[str, tuple[str, str]] = {
    "twilio": ("virtual", "a cloud-telephony provider"),
    "onoff": ("virtual", "a virtual second-number app"),
    "mobiweb": ("virtual", "an A2P SMS provider"),
    "bandwidth": ("virtual", "a cloud-telephony provider"),
    "vonage": ("virtual", "a cloud-telephony provider"),
    "nexmo": ("virtual", "a cloud-telephony provider"),
    "plivo": ("virtual", "a cloud-telephony provider"),
    "telnyx": ("virtual", "a cloud-telephony provider"),
    "sinch": ("virtual", "a cloud-telephony provider"),
    "e*message": ("machine", "a paging network"),
    "globalstar": ("machine", "a satellite network"),
    "mobiquithings": ("machine", "an IoT/M2M operator"),
    "legos": ("machine", "an IoT/M2M operator"),
    "transatel": ("machine", "an M2M/IoT operator"),
    "airbus defence": ("machine", "a defence network"),
    "tdf": ("machine", "a broadcast network"),
    "alphalink": ("business", "a wholesale VoIP operator"),
    "sewan": ("business", "a business telephony operator"),
    "keyyo": ("business", "a business VoIP operator"),
    "axialys": ("business", "a call-tracking operator"),
    "intercall": ("business", "a conferencing operator"),
    "ip directions": ("business", "a wholesale operator"),
    "completel": ("business", "a business operator"),
    "netcom group": ("business", "a business operator"),
    "sct": ("business", "a business operator"),
}


def carrier_kind(carrier: str) -> tuple[str, str] | None:
    name = carrier.lower()
    for key, kind in CARRIER_KINDS.items():
        if key == "sct" and name != "sct":
            continue  # a short name: whole-word only
        if key in name:
            return kind
    return None


def phone_findings(numbers: Sequence[tuple[int | None, str]]) -> list[Finding]:
    """Checks on (canary id or None, E.164 number) pairs: validity, ranges, carriers, spread."""
    import phonenumbers
    from phonenumbers import carrier as carriers

    from canary.phones import classify, is_demo_number, is_telemarketing_number

    groups: dict[tuple, list[tuple[int | None, str]]] = defaultdict(list)
    kinds: Counter[str] = Counter()
    operators: Counter[str] = Counter()
    for owner, number in numbers:
        if is_demo_number(number):
            groups[("fiction",)].append((owner, number))
            continue
        if is_telemarketing_number(number):
            groups[("telemarketing",)].append((owner, number))
            continue
        line = classify(number)
        kinds[line] += 1
        if line == "invalid":
            groups[("invalid",)].append((owner, number))
            continue
        if line in ("toll_free", "premium", "shared_cost", "other"):
            groups[("not-personal", line)].append((owner, number))
            continue
        name = carriers.name_for_number(phonenumbers.parse(number, "FR"), "fr")
        operators[name or line] += 1
        kind = carrier_kind(name) if name else None
        if kind:
            groups[(kind[0], name, kind[1])].append((owner, number))
    findings = [_phone_group(key, members) for key, members in groups.items()]
    findings += _spread_findings([n for _, n in numbers], kinds, operators)
    return findings


def _phone_group(key: tuple, members: list[tuple[int | None, str]]) -> Finding:
    n, ids, values = len(members), canary_ids(o for o, _ in members), examples(v for _, v in members)
    if key[0] == "fiction":
        return Finding("phone-fiction", Severity.ERROR,
                       f"{n} numbers are in ARCEP fiction ranges (reserved for films): obviously fake",
                       "use numbers you own, outside the fiction ranges", ids, values)
    if key[0] == "telemarketing":
        return Finding("phone-telemarketing", Severity.ERROR,
                       f"{n} numbers are in ARCEP telemarketing ranges: no patient has one",
                       "use personal mobile or landline numbers", ids, values)
    if key[0] == "invalid":
        return Finding("phone-invalid", Severity.ERROR, f"{n} numbers are not valid French numbers",
                       "check their digits", ids, values)
    if key[0] == "not-personal":
        return Finding("phone-not-personal", Severity.ERROR,
                       f"{n} numbers are {key[1].replace('_', '-')} numbers, not personal lines",
                       "use personal mobile or landline numbers", ids, values)
    kind, name, what = key
    severity = Severity.WARNING if kind == "business" else Severity.ERROR
    return Finding(f"phone-{kind}-carrier", severity,
                   f"{n} numbers are in blocks libphonenumber attributes to {name} ({what}): "
                   "any number lookup shows it",
                   "use numbers from a consumer operator (Orange, SFR, Bouygues, Free or their MVNOs)",
                   ids, values)


def _spread_findings(numbers: list[str], kinds: Counter[str], operators: Counter[str]) -> list[Finding]:
    findings = []
    total = len(numbers)
    if total >= 5 and kinds["voip"] * 2 > total:
        findings.append(Finding(
            "phone-voip-share", Severity.WARNING,
            f"{kinds['voip']} of {total} numbers are 09 VoIP numbers; patients mostly give mobiles",
            "make most of the pool mobile numbers (06/07)"))
    blocks = Counter(n[:8] for n in numbers if len(n) == 12)
    if total >= 10 and blocks:
        block, count = blocks.most_common(1)[0]
        if count * 2 > total:
            findings.append(Finding(
                "phone-one-block", Severity.WARNING,
                f"{count} of {total} numbers are in one 10,000-number block ({block}xxxx): "
                "sorted by phone, the canaries sit together",
                "spread the pool over several blocks and operators", values=(block + "xxxx",)))
    named = {name: n for name, n in operators.items() if name not in ("mobile", "landline", "voip")}
    if sum(named.values()) >= 20 and len(named) == 1:
        (name,) = named
        findings.append(Finding(
            "phone-one-operator", Severity.INFO,
            f"every mobile number is with {name}; real patients spread over all operators",
            "add numbers from other operators"))
    return findings
