"""Medical content of a fake patient: blood group, allergies, treatments, GP.

Frequencies are rounded public figures (EFS for blood groups); treatment
weights are ours, tuned so that the number and kind of drugs follow age and
sex the way a prescription list does (polypharmacy after 75, contraception
for young women, prostate drugs for older men).
"""

from __future__ import annotations

import bisect
import functools
import random
from dataclasses import dataclass

from canary.identity import refdata
from canary.model import Practitioner, Sex
from canary.identity.sampling import chance, choice, pick, randint, weighted

# Établissement français du sang, % of the population.
BLOOD_GROUPS: dict[str, float] = {"A+": 38, "O+": 36, "B+": 8, "A-": 7, "O-": 6, "AB+": 3, "B-": 1, "AB-": 1}

_ALLERGIES = weighted([
    ("pénicilline", 20), ("amoxicilline", 12), ("pollens", 10), ("AINS", 7), ("aspirine", 6), ("iode", 6),
    ("acariens", 6), ("latex", 5), ("sulfamides", 5), ("arachide", 4), ("codéine", 3), ("céphalosporines", 3),
    ("fruits à coque", 3), ("crustacés", 3), ("nickel", 3), ("poils de chat", 3), ("morphine", 2),
    ("œuf", 2), ("protéines de lait de vache", 2), ("venin de guêpe", 2),
])
# Number of recorded allergies: most patient files say "none known".
_ALLERGY_WEIGHTS = ((0, 72), (1, 20), (2, 6), (3, 2))
_ALLERGY_COUNTS = weighted(list(_ALLERGY_WEIGHTS))
# Identities with at least one allergy: a seeder writing them at its site's own rate scales by this.
ALLERGIC_SHARE = 1 - dict(_ALLERGY_WEIGHTS)[0] / sum(weight for _, weight in _ALLERGY_WEIGHTS)

# Age groups for treatment tables: 0-17, 18-44, 45-64, 65-79, 80+.
_AGE_LIMITS = (17, 44, 64, 79)

# How many long-term treatments, by age group.
_TREATMENT_COUNTS = (
    weighted([(0, 80), (1, 15), (2, 5)]),
    weighted([(0, 55), (1, 27), (2, 12), (3, 6)]),
    weighted([(0, 28), (1, 25), (2, 20), (3, 14), (4, 8), (5, 5)]),
    weighted([(0, 10), (1, 12), (2, 16), (3, 18), (4, 16), (5, 12), (6, 9), (7, 7)]),
    weighted([(0, 5), (1, 7), (2, 11), (3, 14), (4, 16), (5, 15), (6, 13), (7, 10), (8, 9)]),
)


@dataclass(frozen=True, slots=True)
class Drug:
    label: str  # INN + dosage, as written on a prescription
    family: str  # at most one drug per family
    weights: tuple[float, float, float, float, float]  # by age group
    sex: str | None = None  # "M"/"F" when only one sex takes it
    min_age: int = 0
    max_age: int = 200


_DRUGS = (
    Drug("amlodipine 5 mg", "ccb", (0, 1, 8, 14, 14)),
    Drug("amlodipine 10 mg", "ccb", (0, 0.5, 3, 5, 5)),
    Drug("ramipril 5 mg", "ras", (0, 0.5, 6, 10, 9)),
    Drug("périndopril 4 mg", "ras", (0, 0.3, 4, 7, 7)),
    Drug("valsartan 80 mg", "ras", (0, 0.3, 3, 6, 6)),
    Drug("irbésartan 150 mg", "ras", (0, 0.3, 3, 5, 5)),
    Drug("losartan 50 mg", "ras", (0, 0.2, 2, 4, 4)),
    Drug("bisoprolol 2,5 mg", "bb", (0, 0.5, 4, 9, 11)),
    Drug("nébivolol 5 mg", "bb", (0, 0.3, 2, 4, 4)),
    Drug("hydrochlorothiazide 12,5 mg", "thiazide", (0, 0.3, 2, 4, 4)),
    Drug("furosémide 40 mg", "loop", (0, 0, 0.5, 3, 8)),
    Drug("atorvastatine 20 mg", "statin", (0, 0.5, 8, 14, 10)),
    Drug("rosuvastatine 10 mg", "statin", (0, 0.3, 6, 10, 7)),
    Drug("simvastatine 20 mg", "statin", (0, 0.2, 3, 5, 4)),
    Drug("acide acétylsalicylique 75 mg", "antiplatelet", (0, 0.2, 4, 12, 14)),
    Drug("clopidogrel 75 mg", "antiplatelet", (0, 0.1, 1.5, 4, 4)),
    Drug("apixaban 5 mg", "anticoagulant", (0, 0.1, 0.8, 4, 8)),
    Drug("rivaroxaban 20 mg", "anticoagulant", (0, 0.1, 0.6, 3, 5)),
    Drug("metformine 1000 mg", "biguanide", (0, 0.5, 6, 9, 7)),
    Drug("metformine 850 mg", "biguanide", (0, 0.3, 3, 4, 4)),
    Drug("gliclazide 30 mg", "sulfonylurea", (0, 0, 1.5, 3, 3)),
    Drug("sitagliptine 100 mg", "dpp4", (0, 0, 1, 2, 2)),
    Drug("insuline glargine 100 U/ml", "insulin", (0.4, 0.6, 1, 1.5, 1.5)),
    Drug("lévothyroxine 50 µg", "thyroid", (0.2, 2, 3, 4, 4), min_age=6),
    Drug("lévothyroxine 75 µg", "thyroid", (0, 2, 3, 4, 3), min_age=12),
    Drug("lévothyroxine 100 µg", "thyroid", (0, 1, 2, 2, 2), min_age=18),
    Drug("allopurinol 100 mg", "gout", (0, 0.1, 1, 3, 3)),
    Drug("oméprazole 20 mg", "ppi", (0.2, 2, 6, 10, 12), min_age=12),
    Drug("ésoméprazole 20 mg", "ppi", (0.1, 1.5, 4, 6, 7), min_age=12),
    Drug("pantoprazole 40 mg", "ppi", (0, 1, 3, 5, 6), min_age=18),
    Drug("macrogol 4000 10 g", "laxative", (0.5, 0.2, 0.5, 2, 6)),
    Drug("paracétamol 1 g", "analgesic", (0, 4, 6, 8, 12), min_age=15),
    Drug("paracétamol 500 mg", "analgesic", (2, 0.5, 0, 0, 0), min_age=8),
    Drug("paracétamol 2,4 % suspension buvable", "analgesic", (4, 0, 0, 0, 0), max_age=7),
    Drug("tramadol 50 mg", "opioid", (0, 0.3, 1, 1.5, 2), min_age=18),
    Drug("salbutamol 100 µg/dose", "saba", (4, 3, 2, 2, 1.5)),
    Drug("fluticasone/salmétérol 250/50 µg", "ics_laba", (0.5, 1, 1.5, 2, 1.5), min_age=4),
    Drug("budésonide/formotérol 200/6 µg", "ics_laba", (0.3, 1, 1.5, 1.5, 1), min_age=6),
    Drug("montélukast 5 mg", "antileukotriene", (1.5, 0, 0, 0, 0), min_age=6, max_age=14),
    Drug("montélukast 10 mg", "antileukotriene", (0.3, 0.8, 0.8, 0.5, 0.3), min_age=15),
    Drug("cétirizine 10 mg", "antihistamine", (3, 3, 2, 1, 0.5), min_age=6),
    Drug("desloratadine 5 mg", "antihistamine", (2, 2, 1.5, 0.8, 0.3), min_age=12),
    Drug("sertraline 50 mg", "ssri", (0.2, 2, 3, 3, 3), min_age=12),
    Drug("escitalopram 10 mg", "ssri", (0, 2, 3, 3, 3), min_age=18),
    Drug("paroxétine 20 mg", "ssri", (0, 1, 2, 2, 1.5), min_age=18),
    Drug("alprazolam 0,25 mg", "benzodiazepine", (0, 1, 2, 3, 4), min_age=18),
    Drug("zolpidem 10 mg", "hypnotic", (0, 0.5, 1.5, 3, 2), min_age=18),
    Drug("zolpidem 5 mg", "hypnotic", (0, 0, 0, 1, 3), min_age=65),
    Drug("prégabaline 75 mg", "neuropathic", (0, 0.5, 1.5, 2, 1.5), min_age=18),
    Drug("donépézil 10 mg", "alzheimer", (0, 0, 0, 0.5, 3), min_age=60),
    Drug("lévétiracétam 500 mg", "antiepileptic", (0.8, 0.8, 0.8, 0.7, 0.6), min_age=4),
    Drug("méthylphénidate 10 mg", "adhd", (1.5, 0.2, 0, 0, 0), min_age=6, max_age=25),
    Drug("tamsulosine 0,4 mg", "alpha_blocker", (0, 0, 3, 8, 10), sex="M", min_age=45),
    Drug("finastéride 5 mg", "5ari", (0, 0, 1, 3, 3), sex="M", min_age=50),
    Drug("acide alendronique 70 mg", "bisphosphonate", (0, 0, 0.5, 3, 4), sex="F", min_age=55),
    Drug("cholécalciférol 100 000 UI", "vitamin_d", (0.5, 1, 2, 4, 6)),
    Drug("carbonate de calcium/cholécalciférol 500 mg/400 UI", "calcium", (0, 0, 0.8, 3, 5), min_age=50),
    Drug("lévonorgestrel/éthinylestradiol 100 µg/20 µg", "contraception", (2, 8, 1, 0, 0), sex="F",
         min_age=15, max_age=50),
    Drug("désogestrel 75 µg", "contraception", (1, 4, 1.5, 0, 0), sex="F", min_age=15, max_age=52),
    Drug("prednisone 5 mg", "corticoid", (0, 0.3, 1, 2, 2)),
    Drug("sulfate ferreux 80 mg", "iron", (0.2, 1.5, 0.8, 0.8, 1), sex="F"),
)


_MALE = Sex.MALE  # read once: enum members read through their class cost a lookup


def _age_group(age: int) -> int:
    for index, limit in enumerate(_AGE_LIMITS):
        if age <= limit:
            return index
    return len(_AGE_LIMITS)


@functools.cache
def _drug_table(age: int, sex: str) -> tuple[tuple[Drug, ...], tuple[float, ...]]:
    group = _age_group(age)
    table = weighted([(d, d.weights[group]) for d in _DRUGS
                      if d.min_age <= age <= d.max_age and d.sex in (None, sex)])
    return table.items, table.cum_weights


@functools.cache
def _blood_table():
    return weighted(list(BLOOD_GROUPS.items()))


def blood_group(rng: random.Random) -> str:
    return pick(rng, _blood_table())


def allergies(rng: random.Random) -> tuple[str, ...]:
    count = pick(rng, _ALLERGY_COUNTS)
    chosen: list[str] = []
    while len(chosen) < count:
        allergy = pick(rng, _ALLERGIES)
        if allergy not in chosen:
            chosen.append(allergy)
    return tuple(chosen)


def treatments(rng: random.Random, age: int, sex: Sex) -> tuple[str, ...]:
    """Long-term treatments, at most one drug per family, more with age."""
    count = pick(rng, _TREATMENT_COUNTS[_age_group(age)])
    if count == 0:
        return ()
    items, cum = _drug_table(age, "M" if sex is _MALE else "F")
    total = cum[-1]
    chosen: dict[str, str] = {}  # family -> label, at most one drug per family
    for _ in range(count * 6):
        drug = items[bisect.bisect(cum, rng.random() * total)]
        if drug.family not in chosen:
            chosen[drug.family] = drug.label
            if len(chosen) == count:
                break
    return tuple(chosen.values())


def luhn_digit(digits: str) -> str:
    """The Luhn check digit to append to ``digits``."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def rpps_number(rng: random.Random) -> str:
    """11 digits: "10" and 8 digits as real RPPS numbers, then a Luhn digit
    (real RPPS numbers, e.g. 10005173140, carry a Luhn check digit)."""
    third = "0" if chance(rng, 0.85) else "1"  # most numbers so far are 100..., newer ones 101...
    body = "10" + third + f"{rng.randrange(10_000_000):07d}"
    return body + luhn_digit(body)


class GpBook:
    """The treating GPs of a run: patients of one département share a
    limited set of GPs, as in a real patient file (about 30 per GP here)."""

    PATIENTS_PER_GP = 30

    def __init__(self) -> None:
        self._by_departement: dict[str, tuple[list[Practitioner], list[int]]] = {}

    def gp_for(self, rng: random.Random, departement: str) -> Practitioner:
        entry = self._by_departement.get(departement)
        if entry is None:
            entry = self._by_departement[departement] = ([], [0])
        gps, patients = entry
        patients[0] += 1
        if len(gps) < 1 + patients[0] // self.PATIENTS_PER_GP:
            gps.append(new_gp(rng))
            return gps[-1]
        return choice(rng, gps)


def new_gp(rng: random.Random) -> Practitioner:
    # GPs in practice were born 1955-1996; younger ones are more often women.
    birth_year = randint(rng, 1955, 1996)
    female = chance(rng, 0.35 if birth_year < 1970 else 0.6)
    sex = "F" if female else "M"
    first = pick(rng, refdata.first_names(sex, birth_year // 10 * 10))
    last = pick(rng, refdata.surnames())
    return Practitioner(civility="Dr", first_name=first, last_name=last, rpps=rpps_number(rng))
