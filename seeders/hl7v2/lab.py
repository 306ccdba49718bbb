"""Laboratory results for a canary as HL7 v2.5.1 ORU^R01 (IHE LTW LAB-3), and their deletion.

With ``footprint=lab`` the receiver (an EHR, a result repository) gets, after
the ADT message, what the laboratory system sends it for one common panel
(seeders/common/lab_panels.py): an unsolicited result ``ORU^R01^ORU_R01``
with the canary's PID (and PV1 for an A04 visit), ORC (``RE``, placer and
filler order numbers), OBR (the panel's LOINC code, collection time, result
status ``F``), one OBX per analyte (``NM``, UCUM unit, reference range,
abnormal flag ``N``, status ``F``) and SPM (serum).

Retiring sends the same ORU with OBX-11 ``D`` ("deletes the OBX record",
HL7 table 0085) and OBR-25 ``C`` (correction of results, table 0123), the
way a laboratory withdraws results sent in error; the ADT retirement
follows. HL7 v2.5.1 chapter 7 defines these codes; IHE LTW uses v2.5.1.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from seeders.common.lab_panels import Panel, Timing, panel_named
from seeders.hl7v2 import message as h
from seeders.hl7v2 import pam

VERSION = "2.5.1"
FINAL, DELETED = "F", "D"  # OBX-11 (table 0085)
SERUM = ["119364003", "Serum specimen", "SCT"]


def _time(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S")


def results_message(header: pam.Header, lab_application: str, pid_segment: str, *, control_id: str,
                    now: datetime, order: dict[str, Any], pv1: str | None = None, delete: bool = False) -> str:
    """ORU^R01 for ``order`` (as ``order_for`` makes it); ``delete`` withdraws its results."""
    panel = panel_named(order["panel"])
    collected = datetime.fromisoformat(order["collected"])
    issued = datetime.fromisoformat(order["issued"])
    status = DELETED if delete else FINAL
    msh = h.segment("MSH", {
        3: lab_application, 4: header.sending_facility, 5: header.receiving_application,
        6: header.receiving_facility, 7: _time(now), 9: ["ORU", "R01", "ORU_R01"], 10: control_id, 11: "P",
        12: VERSION, 17: "FRA", 18: "UNICODE UTF-8",
    })
    segments = [msh, pid_segment] + ([pv1] if pv1 else [])
    segments.append(h.segment("ORC", {
        1: "RE", 2: [order["placer"], lab_application], 3: [order["filler"], lab_application],
        5: "CM", 9: _time(issued),
    }))
    segments.append(h.segment("OBR", {
        1: "1", 2: [order["placer"], lab_application], 3: [order["filler"], lab_application],
        4: [panel.loinc, panel.display, "LN"], 7: _time(collected), 22: _time(issued),
        25: "C" if delete else "F",
    }))
    for n, (analyte, value) in enumerate(zip(panel.analytes, order["values"]), start=1):
        segments.append(h.segment("OBX", {
            1: str(n), 2: "NM", 3: [analyte.loinc, analyte.display, "LN"], 5: _number(value, analyte.decimals),
            6: [analyte.unit, analyte.unit, "UCUM"],
            7: f"{_number(analyte.low, analyte.decimals)}-{_number(analyte.high, analyte.decimals)}",
            8: "N", 11: status, 14: _time(collected), 19: _time(issued),
        }))
    segments.append(h.segment("SPM", {1: "1", 2: [("", ""), (order["filler"], lab_application)], 4: SERUM,
                                      17: _time(collected)}))
    return h.message(*segments)


def _number(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def order_for(panel: Panel, values: list[float], timing: Timing, placer: str, filler: str) -> dict[str, Any]:
    """What the placement keeps of one order: enough to send its results again, deleted."""
    return {"panel": panel.name, "placer": placer, "filler": filler, "values": values,
            "collected": timing.collected.isoformat(), "issued": timing.issued.isoformat()}
