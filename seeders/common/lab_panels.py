"""Common laboratory panels: analytes, LOINC codes, UCUM units, reference ranges, plausible values.

Shared by the seeders that write a laboratory footprint (fhir, hl7v2): the
panels a French laboratory runs most (ionogramme, glycémie, TSH, CRP), with
the adult reference ranges laboratories print. Values are drawn around the
middle of the range and never outside it: a canary's result is never flagged
abnormal, so no critical-value alert or call-back is set off.

Seeders that find the tests in the site's own catalogue by name (openelis)
use ``panel_of`` and ``interval`` below instead: the same panels (plus NFS
and bilan lipidique) matched by test name, and adult reference intervals per
unit for a test the site gives no normal range for.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from seeders.common.transforms import strip_accents


@dataclass(frozen=True)
class Analyte:
    loinc: str
    display: str
    unit: str  # UCUM code, also shown as the unit
    low: float
    high: float
    decimals: int


@dataclass(frozen=True)
class Panel:
    name: str
    loinc: str
    display: str
    analytes: tuple[Analyte, ...]


PANELS = (
    Panel("ionogramme", "24326-1", "Electrolytes 1998 panel - Serum or Plasma", (
        Analyte("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 136, 145, 0),
        Analyte("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 1),
        Analyte("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 98, 107, 0),
    )),
    Panel("glycemie", "14749-6", "Glucose [Moles/volume] in Serum or Plasma", (
        Analyte("14749-6", "Glucose [Moles/volume] in Serum or Plasma", "mmol/L", 4.1, 5.9, 2),
    )),
    Panel("tsh", "3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", (
        Analyte("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 0.4, 4.0, 2),
    )),
    Panel("crp", "1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", (
        Analyte("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 0.5, 5.0, 1),
    )),
)


def _value(analyte: Analyte, rnd: random.Random) -> float:
    """Around the middle of the range, never outside it (no abnormal flag, no alert)."""
    middle, spread = (analyte.low + analyte.high) / 2, (analyte.high - analyte.low) / 6
    value = min(max(rnd.gauss(middle, spread), analyte.low), analyte.high)
    return round(value, analyte.decimals) if analyte.decimals else float(round(value))


def pick_panel(rnd: random.Random) -> Panel:
    return rnd.choice(PANELS)


def panel_named(name: str) -> Panel:
    return next(p for p in PANELS if p.name == name)


def values(panel: Panel, rnd: random.Random) -> list[float]:
    return [_value(a, rnd) for a in panel.analytes]


@dataclass(frozen=True)
class Timing:
    collected: datetime
    issued: datetime

    @classmethod
    def before(cls, now: datetime, rnd: random.Random) -> "Timing":
        """Collected a few hours to two days before planting, validated 2 to 6 hours later."""
        collected = now - timedelta(minutes=rnd.randint(6 * 60, 48 * 60))
        issued = min(collected + timedelta(minutes=rnd.randint(120, 360)), now)
        return cls(collected.replace(microsecond=0), issued.replace(microsecond=0))


# Tests of a site's catalogue, by name: panel -> patterns matched against the unaccented, lower-case name.
TEST_NAMES: dict[str, tuple[str, ...]] = {
    "NFS": (r"globules blancs|^gb$|leucocyt", r"globules rouges|^gr$|hematies", r"^hemoglobine$|^hb$",
            r"hematocrite|hemotocrite", r"volume globulaire|^vgm$", r"teneur corpusculaire|^tcmh$",
            r"concentration corpusculaire|^ccmh$", r"plaquette|^plq$", r"neutrophiles \(%\)|^neut %$",
            r"lymphocytes \(%\)|^lymph %$", r"monocytes \(%\)|^mono %$"),
    "ionogramme": (r"^sodium|natremie", r"^potassium|kaliemie", r"^chlore|chlorure|chloremie", r"bicarbonate"),
    "glycemie": (r"^glucose$|^glycemie$",),
    "bilan lipidique": (r"cholesterol total", r"cholesterol hdl|^hdl", r"cholesterol ldl|^ldl", r"triglyceride"),
    "TSH": (r"^tsh|thyreostimuline",),
    "CRP": (r"^crp|proteine c.reactive",),
}


@dataclass(frozen=True, slots=True)
class Interval:
    pattern: str  # test name
    unit: str  # unit of measure, as written in unit_of_measure.name (lower case, no spaces)
    low: float
    high: float
    decimals: int


# Adult reference intervals, by test and unit (Biologie médicale, usual French reports).
INTERVALS = (
    Interval(r"globules blancs|^gb$|leucocyt", r"mille/mm3|10\^3/.l|g/l", 4.0, 10.0, 1),
    Interval(r"globules rouges|^gr$|hematies", r"million/mm3|10\^6/.l|t/l", 4.0, 5.6, 2),
    Interval(r"^hemoglobine$|^hb$", r"g/dl", 12.0, 16.5, 1),
    Interval(r"hematocrite|hemotocrite", r"%", 36.0, 48.0, 1),
    Interval(r"volume globulaire|^vgm$", r"fl", 80.0, 98.0, 0),
    Interval(r"teneur corpusculaire|^tcmh$", r"pg", 27.0, 32.0, 1),
    Interval(r"concentration corpusculaire|^ccmh$", r"g/dl", 32.0, 36.0, 1),
    Interval(r"plaquette|^plq$", r"mille/mm3|10\^3/.l|g/l", 160.0, 380.0, 0),
    Interval(r"neutrophiles \(%\)|^neut %$", r"%", 42.0, 72.0, 0),
    Interval(r"lymphocytes \(%\)|^lymph %$", r"%", 20.0, 40.0, 0),
    Interval(r"monocytes \(%\)|^mono %$", r"%", 3.0, 10.0, 0),
    Interval(r"^sodium|natremie", r"mmol/l|meq/l", 136.0, 144.0, 0),
    Interval(r"^potassium|kaliemie", r"mmol/l|meq/l", 3.6, 4.9, 1),
    Interval(r"^chlore|chlorure|chloremie", r"mmol/l|meq/l", 98.0, 106.0, 0),
    Interval(r"bicarbonate", r"mmol/l|meq/l", 23.0, 29.0, 0),
    Interval(r"^glucose$|^glycemie$", r"g/l", 0.74, 1.06, 2),
    Interval(r"^glucose$|^glycemie$", r"mmol/l", 4.1, 5.9, 1),
    Interval(r"cholesterol total", r"g/l", 1.6, 2.3, 2),
    Interval(r"cholesterol hdl|^hdl", r"g/l", 0.42, 0.78, 2),
    Interval(r"cholesterol ldl|^ldl", r"g/l", 0.9, 1.55, 2),
    Interval(r"triglyceride", r"g/l", 0.55, 1.45, 2),
    Interval(r"^tsh|thyreostimuline", r"mui/l|.ui/ml", 0.5, 3.8, 2),
    Interval(r"^crp|proteine c.reactive", r"mg/l", 0.6, 4.8, 1),
)


def folded(name: str | None) -> str:
    return strip_accents(name or "").strip().lower()


def panel_of(test_name: str | None) -> str | None:
    """The panel a test belongs to, by its name, or None."""
    name = folded(test_name)
    for panel, patterns in TEST_NAMES.items():
        if any(re.search(pattern, name) for pattern in patterns):
            return panel
    return None


def interval(test_name: str | None, unit: str | None) -> Interval | None:
    name, written = folded(test_name), folded(unit).replace(" ", "")
    for entry in INTERVALS:
        if re.search(entry.pattern, name) and written and re.fullmatch(entry.unit, written):
            return entry
    return None
