"""The NIR (numéro de sécurité sociale): layout, key, and birth-place coding.

A NIR is 13 characters plus a 2-digit key::

    S YY MM DD CCC OOO KK
    | |  |  |  |   |   +-- key = 97 - (N mod 97), N = the 13 first characters
    | |  |  |  |   +------ order number 001-999 (rank of the registration)
    | |  |  |  +---------- commune (3 digits)
    | |  |  +------------- département as coded on the birth date ("2A"/"2B")
    | |  +---------------- birth month 01-12
    | +------------------- birth year, two digits
    +--------------------- sex: 1 male, 2 female

Overseas départements use 3 digits ("971") and the commune 2, which is the
same as splitting the 5-character INSEE code 2 + 3. Births abroad use "99"
and the 3-digit INSEE country code. Corsica was one département ("20") until
1 January 1976; codes of that time are "20" + the commune number the commune
still carries under 2A/2B.

For the key, 2A counts as 19 and 2B as 18 (a "20" of before 1976 is numeric
as it is).
"""

from __future__ import annotations

import re
from datetime import date

from canary.model import Birthplace, Sex

# The NIR pattern used by CNAM-style validators (sex 1-3/7-8, month with the
# fictitious 20-42/50-99 values, 3-digit overseas départements). We only emit
# a subset of it; tests use it as an outside check of our layout.
NIR_PATTERN = re.compile(
    r"^([1-37-8])([0-9]{2})(0[0-9]|[2-35-9][0-9]|[14][0-2])"
    r"((0[1-9]|[1-8][0-9]|9[0-69]|2[abAB])(00[1-9]|0[1-9][0-9]|[1-8][0-9]{2}|9[0-8][0-9]|990)"
    r"|(9[78][0-9])(0[1-9]|[1-8][0-9]|90))"
    r"(00[1-9]|0[1-9][0-9]|[1-9][0-9]{2})(0[1-9]|[1-8][0-9]|9[0-7])$"
)

# Corsica split into 2A and 2B on this date (law of 15 May 1975).
CORSICA_SPLIT = date(1976, 1, 1)

_KEY_SUBSTITUTES = {"2A": "19", "2B": "18"}
# "00".."99" and "000".."999", read instead of formatted: NIR building is on the hot path.
TWO_DIGITS = tuple(f"{n:02d}" for n in range(100))
THREE_DIGITS = tuple(f"{n:03d}" for n in range(1000))


def nir_key(body: str) -> str:
    """The 2-digit key of a 13-character NIR body (2A/2B substituted)."""
    if not body.isdigit():
        dept = body[5:7].upper()
        if dept in _KEY_SUBSTITUTES:
            body = body[:5] + _KEY_SUBSTITUTES[dept] + body[7:]
    return TWO_DIGITS[97 - int(body) % 97]


def historical_code(insee_code: str, birth_date: date) -> tuple[str, str]:
    """(commune code, département code) as they were on ``birth_date``.

    Only Corsica differs among the places we emit: "2A004" was "20004" before
    1976. Callers must not ask for places whose old coding we cannot
    reproduce (see canary/identity/places.py: ex-Seine and ex-Seine-et-Oise before 1968).
    """
    if insee_code[:2] in ("2A", "2B") and birth_date < CORSICA_SPLIT:
        return "20" + insee_code[2:], "20"
    if insee_code[:2] in ("97", "98"):
        return insee_code, insee_code[:3]
    return insee_code, insee_code[:2]


def make_nir(sex: Sex, birth_date: date, birthplace: Birthplace, order: int) -> str:
    """The full 15-character NIR of a person (key included)."""
    if not 1 <= order <= 999:
        raise ValueError(f"NIR order number must be 1-999, not {order}")
    code = birthplace.insee_code
    body = (
        ("1" if sex is Sex.MALE else "2")
        + f"{birth_date.year % 100:02d}{birth_date.month:02d}"
        + code[:2]
        + code[2:5]
        + f"{order:03d}"
    )
    return body + nir_key(body)


def is_valid(nir: str) -> bool:
    """True for a well-formed NIR whose key matches (spaces ignored)."""
    nir = nir.replace(" ", "").upper()
    if len(nir) != 15 or not NIR_PATTERN.match(nir):
        return False
    return nir_key(nir[:13]) == nir[13:]


def parts(nir: str) -> dict[str, str]:
    """Split a NIR into its named fields (no validation)."""
    nir = nir.replace(" ", "").upper()
    return {
        "sex": nir[0],
        "year": nir[1:3],
        "month": nir[3:5],
        "departement": nir[5:7],
        "commune": nir[7:10],
        "order": nir[10:13],
        "key": nir[13:15],
    }


def spaced(nir: str) -> str:
    """The usual printed form: "2 84 05 75 115 123 45"."""
    p = parts(nir)
    return " ".join((p["sex"], p["year"], p["month"], p["departement"], p["commune"], p["order"], p["key"]))
