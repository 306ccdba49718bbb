"""OpenMRS patient identifier validators, re-implemented bit for bit.

An OpenMRS identifier type names a Java validator class
(``patient_identifier_type.validator``); the application refuses an
identifier whose check character that class rejects, and a canary with a
wrong one would be both broken and conspicuous. Each validator here mirrors
its Java original:

* ``org.openmrs.patient.impl.LuhnIdentifierValidator`` (core): Regenstrief's
  Luhn over the character codes (letters allowed), written ``BASE-D`` with a
  decimal check digit.
* ``org.openmrs.patient.impl.VerhoeffIdentifierValidator`` (core): eight
  digits, written ``BASE-L`` with a check letter A-J.
* ``org.openmrs.module.idgen.validator.LuhnMod10IdentifierValidator`` and
  ``LuhnMod30IdentifierValidator`` (idgen module, the Reference Application's
  "OpenMRS ID"): Luhn mod N over a character set, check character appended
  without a hyphen.

``validator_for(name)`` returns one by Java class name (None for a name this
module does not know); an empty name means "no check digit".
"""

from __future__ import annotations

from dataclasses import dataclass

# Characters the core Luhn validator accepts in the undecorated identifier.
_CORE_LUHN_ALLOWED = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
# Check letters of BaseHyphenatedIdentifierValidator: A=0 ... J=9.
_CHECK_LETTERS = "ABCDEFGHIJ"
MOD30_CHARACTERS = "0123456789ACDEFGHJKLMNPRTUVWXY"


@dataclass(frozen=True, slots=True)
class Validator:
    """How one validator class builds and reads identifiers."""

    java_name: str
    # Characters a sequential number is written with in the undecorated part
    # (the counter the seeder increments), in value order.
    counter_alphabet: str

    def valid_identifier(self, base: str) -> str:
        """``base`` with its check character, as the application writes it; ValueError if not allowed."""
        raise NotImplementedError

    def undecorated(self, identifier: str) -> str | None:
        """The base of a valid identifier, or None if it is not valid for this validator."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class NoCheckDigit(Validator):
    def valid_identifier(self, base: str) -> str:
        if not base or any(ch.isspace() for ch in base):
            raise ValueError(f"identifier {base!r} is empty or holds white space")
        return base

    def undecorated(self, identifier: str) -> str | None:
        return identifier or None


def core_luhn_check_digit(base: str) -> int:
    """The check digit of LuhnIdentifierValidator.getCheckDigit (ASCII code - 48 per character)."""
    text = base.strip().upper()
    total = 0
    for position, char in enumerate(reversed(text)):
        digit = ord(char) - 48
        # Doubling with digit sum for 0-9, extended to letters the same way.
        total += 2 * digit - digit // 5 * 9 if position % 2 == 0 else digit
    total = abs(total) + 10
    return (10 - total % 10) % 10


def _hyphenated_base(identifier: str) -> tuple[str, str] | None:
    """(base, check character) of ``BASE-C``; the base ends at the first hyphen, as in Java."""
    hyphen = identifier.find("-")
    if hyphen < 1:
        return None
    base, check = identifier[:hyphen], identifier[hyphen + 1:]
    return (base, check) if len(check) == 1 else None


def _check_value(check: str) -> int | None:
    """A hyphenated check character as a number: a digit, or A-J for 0-9."""
    if check.isdigit():
        return int(check)
    upper = check.upper()
    return _CHECK_LETTERS.index(upper) if upper in _CHECK_LETTERS else None


@dataclass(frozen=True, slots=True)
class CoreLuhn(Validator):
    def valid_identifier(self, base: str) -> str:
        if not base or any(ch not in _CORE_LUHN_ALLOWED for ch in base):
            raise ValueError(f"identifier {base!r} holds a character the Luhn validator refuses")
        # LuhnIdentifierValidator overrides the letter form: "1234-2", not "1234-C".
        return f"{base}-{core_luhn_check_digit(base)}"

    def undecorated(self, identifier: str) -> str | None:
        parts = _hyphenated_base(identifier)
        if parts is None or any(ch not in _CORE_LUHN_ALLOWED for ch in parts[0]):
            return None
        base, check = parts
        return base if _check_value(check) == core_luhn_check_digit(base) else None


# Verhoeff tables (dihedral group D5), as in VerhoeffIdentifierValidator.
_OP = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5), (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7), (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3), (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)
_F1 = (1, 5, 7, 6, 2, 8, 3, 0, 9, 4)


def _verhoeff_permutations() -> list[tuple[int, ...]]:
    table = [tuple(range(10)), _F1]
    for _ in range(2, 8):
        table.append(tuple(table[-1][_F1[j]] for j in range(10)))
    return table


def verhoeff_check_digit(base: str) -> int:
    """VerhoeffIdentifierValidator.getCheckDigit: positions counted from the left, starting at 1."""
    permutations = _verhoeff_permutations()
    check = 0
    for position, char in enumerate(base, start=1):
        check = _OP[check][permutations[position % 8][int(char)]]
    return _INV[check]


@dataclass(frozen=True, slots=True)
class Verhoeff(Validator):
    length: int = 8

    def valid_identifier(self, base: str) -> str:
        if len(base) != self.length or not base.isdigit():
            raise ValueError(f"identifier {base!r} is not {self.length} digits (Verhoeff validator)")
        return f"{base}-{_CHECK_LETTERS[verhoeff_check_digit(base)]}"

    def undecorated(self, identifier: str) -> str | None:
        parts = _hyphenated_base(identifier)
        if parts is None or len(parts[0]) != self.length or not parts[0].isdigit():
            return None
        base, check = parts
        # The application refuses numeric check characters for Verhoeff.
        if check.isdigit() or _check_value(check) != verhoeff_check_digit(base):
            return None
        return base


def luhn_mod_n_check_character(base: str, characters: str) -> str:
    """LuhnModNIdentifierValidator.computeCheckDigit over ``characters``."""
    mod = len(characters)
    factor, total = 2, 0
    for char in reversed(base.upper().strip()):
        code = characters.find(char)
        if code < 0:
            raise ValueError(f"character {char!r} is not one of {characters}")
        addend = factor * code
        factor = 1 if factor == 2 else 2
        total += addend // mod + addend % mod
    return characters[(mod - total % mod) % mod]


@dataclass(frozen=True, slots=True)
class LuhnModN(Validator):
    def valid_identifier(self, base: str) -> str:
        standard = base.upper().strip()
        return standard + luhn_mod_n_check_character(standard, self.counter_alphabet)

    def undecorated(self, identifier: str) -> str | None:
        standard = identifier.upper().strip()
        if len(standard) < 2 or any(ch not in self.counter_alphabet for ch in standard):
            return None
        base = standard[:-1]
        return base if luhn_mod_n_check_character(base, self.counter_alphabet) == standard[-1] else None


_DIGITS = "0123456789"
# The core default for types whose validator is empty but check_digit is set.
CORE_LUHN_NAME = "org.openmrs.patient.impl.LuhnIdentifierValidator"

_VALIDATORS: dict[str, Validator] = {
    CORE_LUHN_NAME: CoreLuhn(CORE_LUHN_NAME, _DIGITS),
    "org.openmrs.patient.impl.VerhoeffIdentifierValidator":
        Verhoeff("org.openmrs.patient.impl.VerhoeffIdentifierValidator", _DIGITS),
    "org.openmrs.module.idgen.validator.LuhnMod10IdentifierValidator":
        LuhnModN("org.openmrs.module.idgen.validator.LuhnMod10IdentifierValidator", _DIGITS),
    "org.openmrs.module.idgen.validator.LuhnMod30IdentifierValidator":
        LuhnModN("org.openmrs.module.idgen.validator.LuhnMod30IdentifierValidator", MOD30_CHARACTERS),
}
NO_CHECK_DIGIT = NoCheckDigit("", _DIGITS)


def known_validators() -> tuple[str, ...]:
    return tuple(_VALIDATORS)


def validator_for(java_name: str | None) -> Validator | None:
    """The validator for a Java class name; NO_CHECK_DIGIT for none; None if unknown."""
    name = (java_name or "").strip()
    if not name:
        return NO_CHECK_DIGIT
    return _VALIDATORS.get(name)
