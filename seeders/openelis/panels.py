"""Common laboratory panels, and plausible values for their tests.

A canary's results come from the site's own test catalogue (``test``): the
tests of the panels below that the site orders (those its recent analyses
use; every matching active test on a site with no analyses yet). A value is,
in order of preference: close to one of the site's own recent results for
that test; inside the normal range the site configured for the patient's sex
and age (``result_limits``, ages in months, as ``ResultLimitServiceImpl``
reads them); inside the adult reference interval below, for the unit the
test reports in. A test with none of the three is not used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from seeders.common.transforms import strip_accents

# Panel -> patterns matched against the unaccented, lower-case test name.
PANELS: dict[str, tuple[str, ...]] = {
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
    for panel, patterns in PANELS.items():
        if any(re.search(pattern, name) for pattern in patterns):
            return panel
    return None


def interval(test_name: str | None, unit: str | None) -> Interval | None:
    name, written = folded(test_name), folded(unit).replace(" ", "")
    for entry in INTERVALS:
        if re.search(entry.pattern, name) and written and re.fullmatch(entry.unit, written):
            return entry
    return None
