"""Common laboratory panels: analytes, LOINC codes, UCUM units, reference ranges, plausible values.

Shared by the seeders that write a laboratory footprint (fhir, hl7v2): the
panels a French laboratory runs most (ionogramme, glycémie, TSH, CRP), with
the adult reference ranges laboratories print. Values are drawn around the
middle of the range and never outside it: a canary's result is never flagged
abnormal, so no critical-value alert or call-back is set off.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

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
