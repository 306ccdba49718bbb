"""The checks an attacker would run on a dump, as pure functions over canary data.

Each returns ``Finding`` values (what gives the canaries away, and how to fix
it); ``canary/audit/report.py`` gathers the data from the registry and the target
and runs them. Nothing here does I/O, except the shipped reference data.
Phone checks live in ``canary/audit/phones.py``.
"""

from __future__ import annotations

import enum
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Collection, Iterable, Sequence
from zoneinfo import ZoneInfo

from canary.model import Identity, Sex


class Severity(enum.IntEnum):
    INFO = 0
    WARNING = 1
    ERROR = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # stable code, e.g. "phone-virtual-carrier"
    severity: Severity
    message: str  # what an attacker would notice
    fix: str  # what to do about it
    canaries: tuple[int, ...] = ()  # canary ids concerned (none for pool checks)
    values: tuple[str, ...] = ()  # offending values (numbers, domains, columns), a few


MAX_VALUES = 10
DRIP_FIX = "plant with `canary plant SOURCE --count N --over 30d` so real admissions fall between canaries"

SUSPICIOUS_WORDS = ("test", "demo", "canary", "canari", "honey", "fake", "example", "sample", "dummy",
                    "trap", "fictif", "bidon", "leurre", "piege", "invalid", "localhost")
RESERVED_TLDS = (".test", ".example", ".invalid", ".localhost", ".local")
DISPOSABLE_DOMAINS = frozenset({
    "yopmail.com", "yopmail.fr", "mailinator.com", "guerrillamail.com", "10minutemail.com",
    "trashmail.com", "jetable.org", "tempmail.com", "temp-mail.org", "throwawaymail.com",
    "getnada.com", "maildrop.cc", "sharklasers.com", "dispostable.com", "mailcatch.com",
})


def canary_ids(items: Iterable[int | None]) -> tuple[int, ...]:
    return tuple(sorted({i for i in items if i is not None}))


def examples(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(list(dict.fromkeys(values))[:MAX_VALUES])


# -- identities --------------------------------------------------------------------


def nir_findings(identities: Sequence[tuple[int, Identity]]) -> list[Finding]:
    from stdnum.fr import nir as stdnum_nir

    from canary.identity import nir as canary_nir

    invalid, inconsistent, reasons = [], [], []
    for canary_id, identity in identities:
        if not (stdnum_nir.is_valid(identity.nir) and canary_nir.is_valid(identity.nir)):
            invalid.append(canary_id)
            continue
        why = nir_inconsistency(identity)
        if why:
            inconsistent.append(canary_id)
            reasons.append(f"#{canary_id}: {why}")
    findings = []
    if invalid:
        findings.append(Finding("nir-invalid", Severity.ERROR,
                                f"{len(invalid)} NIRs fail the key check (python-stdnum, any validator)",
                                "regenerate these canaries: retire them and plant new ones",
                                canary_ids(invalid)))
    if inconsistent:
        findings.append(Finding("nir-inconsistent", Severity.ERROR,
                                f"{len(inconsistent)} NIRs disagree with sex, birth date or birthplace",
                                "retire them and plant new ones (the generator keeps them consistent)",
                                canary_ids(inconsistent), examples(reasons)))
    return findings


def nir_inconsistency(identity: Identity) -> str:
    """Why the NIR contradicts the identity, or "" when it agrees."""
    from canary.identity import nir as canary_nir

    parts = canary_nir.parts(identity.nir)
    sex = "1" if identity.sex is Sex.MALE else "2"
    if parts["sex"] != sex:
        return f"NIR sex digit {parts['sex']} but sex {identity.sex.value}"
    born = identity.birth_date
    if parts["year"] != f"{born.year % 100:02d}" or parts["month"] != f"{born.month:02d}":
        return f"NIR year and month {parts['year']}/{parts['month']} but birth date {born:%Y-%m}"
    code, _dept = canary_nir.historical_code(identity.birthplace.insee_code, born)
    if (parts["departement"] + parts["commune"]).upper() != code[:5].upper():
        return (f"NIR birthplace {parts['departement']}{parts['commune']} but "
                f"{identity.birthplace.name} is {code}")
    return ""


def address_findings(identities: Sequence[tuple[int, Identity]]) -> list[Finding]:
    from canary.identity import refdata

    bad = [(cid, f"{i.address.postcode} {i.address.city}") for cid, i in identities
           if not refdata.is_valid_postcode_commune(i.address.postcode, i.address.insee_code)]
    if not bad:
        return []
    return [Finding("postcode-commune", Severity.ERROR,
                    f"{len(bad)} addresses have a postcode that La Poste does not use for their commune",
                    "retire them and plant new ones (addresses come from the reference data)",
                    canary_ids(c for c, _ in bad), examples(v for _, v in bad))]


def email_findings(identities: Sequence[tuple[int | None, str]], common: Collection[str] = ()) -> list[Finding]:
    """Checks on (canary id or None, e-mail address or bare domain) pairs.

    ``common``: addresses that are watched mailboxes at ordinary providers
    (contacts.mailbox_pool_file): checked for test and disposable domains, but
    not counted as a domain only canaries use (real patients use gmail.com too).
    """
    suspicious, disposable = [], []
    domains: Counter[str] = Counter()
    for owner, address in identities:
        domain = address.rpartition("@")[2].lower().strip(".")
        if address.lower() not in common:
            domains[domain] += 1
        if domain in DISPOSABLE_DOMAINS:
            disposable.append((owner, domain))
        elif domain.endswith(RESERVED_TLDS) or any(w in domain for w in SUSPICIOUS_WORDS):
            suspicious.append((owner, domain))
    findings = []
    if suspicious:
        findings.append(Finding("email-test-domain", Severity.ERROR,
                                f"{len(suspicious)} addresses use a domain that reads like a test or a trap",
                                "use domains that look like an ordinary webmail or ISP",
                                canary_ids(o for o, _ in suspicious), examples(d for _, d in suspicious)))
    if disposable:
        findings.append(Finding("email-disposable", Severity.ERROR,
                                f"{len(disposable)} addresses use a disposable-mail domain",
                                "use domains you own", canary_ids(o for o, _ in disposable),
                                examples(d for _, d in disposable)))
    total = sum(domains.values())
    if total >= 10 and len(domains) == 1:
        (domain,) = domains
        findings.append(Finding("email-one-domain", Severity.WARNING,
                                f"all {total} canaries use @{domain}, a domain no other patient has",
                                "own several webmail-looking domains and list them in contacts.email_domains",
                                values=(domain,)))
    return findings


def cluster_findings(contacts: Sequence[tuple[int, str]], max_per_domain: int | None,
                     max_per_block: int | None) -> list[Finding]:
    """(canary id, email or E.164 number): domains and 10,000-number blocks holding too many canaries.

    Without a configured cap, "a few" (3 per domain, 2 per block) is what is recommended.
    """
    from canary.contacts import DEFAULT_MAX_PER_BLOCK, DEFAULT_MAX_PER_DOMAIN

    owners: dict[tuple[str, str], set[int]] = defaultdict(set)
    for canary_id, value in contacts:
        if "@" in value:
            owners[("domain", value.rpartition("@")[2].lower())].add(canary_id)
        elif value.startswith("+") and len(value) > 8:
            owners[("block", value[:-4])].add(canary_id)
    findings = []
    for kind, cap, setting, what in (
            ("domain", max_per_domain or DEFAULT_MAX_PER_DOMAIN, "max_per_email_domain", "email domain"),
            ("block", max_per_block or DEFAULT_MAX_PER_BLOCK, "max_per_phone_block", "10,000-number block")):
        crowded = {key: ids for (k, key), ids in owners.items() if k == kind and len(ids) > cap}
        if not crowded:
            continue
        total = len({i for (k, _), ids in owners.items() if k == kind for i in ids})
        shown = [f"{key}{'xxxx' if kind == 'block' else ''} ({len(ids)})" for key, ids in crowded.items()]
        findings.append(Finding(
            f"{'email-domain' if kind == 'domain' else 'phone-block'}-crowded", Severity.WARNING,
            f"{len(crowded)} {what}s hold more than {cap} canaries each: a {what} shared by several "
            "recent patients that no other patient uses stands out",
            f"keep contacts.{setting} at {cap} or less (the default) and own at least "
            f"{-(-total // cap)} {what}s for these {total} canaries (docs/setup.md)",
            canary_ids(i for ids in crowded.values() for i in ids), examples(shown)))
    return findings


def duplicate_findings(identities: Sequence[tuple[int, Identity]]) -> list[Finding]:
    findings = []
    checks = (
        ("duplicate-nir", Severity.ERROR, "NIR", lambda i: [i.nir]),
        ("duplicate-email", Severity.ERROR, "e-mail address", lambda i: [i.email.lower()]),
        ("duplicate-phone", Severity.WARNING, "phone number", lambda i: [p for p in (i.phone, i.phone2) if p]),
        ("duplicate-person", Severity.WARNING, "name and birth date",
         lambda i: [f"{i.last_name.upper()} {i.first_name.upper()} {i.birth_date}"]),
    )
    for check, severity, what, values_of in checks:
        owners: dict[str, set[int]] = defaultdict(set)
        for canary_id, identity in identities:
            for value in values_of(identity):
                owners[value].add(canary_id)
        shared = {v: ids for v, ids in owners.items() if len(ids) > 1}
        if shared:
            findings.append(Finding(check, severity, f"{len(shared)} {what}s are shared by several canaries",
                                    "retire the duplicates and plant new ones",
                                    canary_ids(i for ids in shared.values() for i in ids), examples(shared)))
    return findings


# -- clustering ----------------------------------------------------------------------

MIN_RUN = 3  # consecutive ids or planting times that make a pattern
BURST = timedelta(minutes=10)


def key_run_findings(keys: Sequence[tuple[int, str, int, int]]) -> list[Finding]:
    """(canary id, table, lowest key, highest key): canaries whose rows follow each other.

    A canary's own rows in one table (an e-mail and a phone contact) are one
    interval; the next canary continuing right after it is the pattern.
    """
    by_table: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for canary_id, table, low, high in keys:
        by_table[table].append((low, high, canary_id))
    findings = []
    for table, items in sorted(by_table.items()):
        items.sort()
        runs, run = [], [items[0]]
        for previous, current in zip(items, items[1:]):
            if current[0] == previous[1] + 1:
                run.append(current)
            else:
                runs.append(run)
                run = [current]
        runs.append(run)
        long = [r for r in runs if len(r) >= MIN_RUN]
        if long:
            ids = canary_ids(c for r in long for _, _, c in r)
            ranges = examples(f"{r[0][0]}-{r[-1][1]}" for r in long)
            findings.append(Finding("ids-consecutive", Severity.WARNING,
                                    f"{len(ids)} canaries have consecutive {table} ids ({', '.join(ranges)}): "
                                    "rows inserted together stand out", DRIP_FIX, ids, ranges))
    return findings


def time_findings(planted: Sequence[tuple[int, str, datetime]], tz: str = "Europe/Paris") -> list[Finding]:
    """(canary id, batch label, planted at) triples: bursts and odd hours."""
    from canary.planting.schedule import is_working_day

    findings = []
    ordered = sorted(planted, key=lambda p: p[2])
    bursts, start = [], 0
    for end in range(len(ordered)):
        while ordered[end][2] - ordered[start][2] > BURST:
            start += 1
        if end - start + 1 >= MIN_RUN:
            bursts.extend(ordered[start:end + 1])
    if bursts:
        ids = canary_ids(c for c, _, _ in bursts)
        batches = examples(b for _, b, _ in bursts)
        findings.append(Finding("timestamps-burst", Severity.WARNING,
                                f"{len(ids)} canaries were planted within {BURST.seconds // 60} minutes "
                                f"of each other (batches {', '.join(batches)}): creation times give them away",
                                DRIP_FIX, ids, batches))
    zone = ZoneInfo(tz)
    odd = [(c, p.astimezone(zone)) for c, _, p in planted]
    odd = [(c, t) for c, t in odd if not (is_working_day(t.date()) and 7 <= t.hour < 20)]
    if odd:
        findings.append(Finding("timestamps-off-hours", Severity.WARNING,
                                f"{len(odd)} canaries were planted at night, on a weekend or a holiday",
                                "plant in working hours (drip planting does)", canary_ids(c for c, _ in odd),
                                examples(f"{t:%Y-%m-%d %H:%M}" for _, t in odd)))
    return findings


def fill_findings(comparisons: Sequence[tuple[int, str, dict, list[dict]]]) -> list[Finding]:
    """(canary id, table, canary row, neighbour rows): columns filled unlike the neighbours.

    A column counts when every neighbour agrees (all empty, or all filled) and
    the canary differs; reported when that holds for at least half the
    canaries compared on that table.
    """
    seen: Counter[str] = Counter()
    gaps: dict[str, list[int]] = defaultdict(list)  # canary empty, neighbours filled
    extras: dict[str, list[int]] = defaultdict(list)  # canary filled, neighbours empty
    for canary_id, table, row, neighbours in comparisons:
        if not neighbours:
            continue
        seen[table] += 1
        for column, value in row.items():
            around = [_filled(n.get(column)) for n in neighbours]
            if all(around) and not _filled(value):
                gaps[f"{table}.{column}"].append(canary_id)
            elif not any(around) and _filled(value):
                extras[f"{table}.{column}"].append(canary_id)
    findings = []
    for column, ids in sorted(gaps.items()):
        if len(ids) * 2 >= seen[column.split(".")[0]]:
            findings.append(Finding("fill-gap", Severity.WARNING,
                                    f"{column} is empty in {len(ids)} canaries "
                                    "but filled in their neighbouring rows",
                                    f"map {column} in the mapping file, as the application fills it",
                                    canary_ids(ids), (column,)))
    for column, ids in sorted(extras.items()):
        if len(ids) * 2 >= seen[column.split(".")[0]]:
            findings.append(Finding("fill-extra", Severity.WARNING,
                                    f"{column} is filled in {len(ids)} canaries "
                                    "but empty in their neighbouring rows",
                                    f"leave {column} out of the mapping file (or empty), as the application does",
                                    canary_ids(ids), (column,)))
    return findings


def _filled(value: object) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())
