"""A clinical footprint after registration: a consultation with vital signs by a practitioner of the site.

A canary with no clinical activity stands out (issue #12). Some time after
the patient was registered, this writes what Mediboard's "consultation
immédiate" (``modules/dPcabinet/controllers/do_consult_now.php``) and the
vital-signs form leave behind:

- ``consultation`` in the practitioner's consultation range (``plageconsult``)
  that is open now (``date`` = today, ``debut <= now < fin``): ``heure`` = now
  to the minute (so it may read a few seconds before the registration, as
  Mediboard's own does right after one), ``arrivee`` = today at that time, ``duree`` 1, ``chrono`` 32
  (``CConsultation::PATIENT_ARRIVE``); ``CConsultation::store`` sets
  ``owner_id`` (the current user) and ``creation_date`` = now; logged;
- ``constantes_medicales`` in that consultation (``context_class`` =
  'CConsultation'): ``datetime`` = now, ``CConstantesMedicales::store`` sets
  ``user_id`` and ``creation_date``; the measures the site usually takes
  (weight, height, blood pressure "systole|diastole" in the site's unit,
  pulse, temperature, SpO2), plausible for the canary's sex and age; logged.

When no range is open now, Mediboard would create a one-hour range
("automatique"); the seeder does not (a range real consultations could then
use would belong to a canary) and says so in one line.

Nothing here sets off a real-world action: Mediboard's HL7/billing handlers
run in PHP on store, not on SQL inserts, and no invoice (``facture``) row is
written.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from canary.errors import ConfigError, SourceError
from canary.model import Identity, Sex
from seeders.mediboard.host import SAMPLE, MediboardHost, usual_address
from seeders.mediboard.journal import KEYS as LOG_KEYS, Journal
from seeders.sql.blend import TableHabits, sample_habits
from seeders.sql.rows import AUTOINCREMENT, Generated, Ref, RowPlan
from seeders.sql.target import SqlTarget

TABLES = ("plageconsult", "consultation", "constantes_medicales")
CLASSES = ("CConsultation", "CConstantesMedicales")
MEASURES = ("poids", "taille", "ta", "pouls", "temperature", "spo2")


@dataclass(frozen=True, slots=True)
class Clinic:
    """How the site's practitioners see patients, read from their recent consultations."""

    consultations: TableHabits
    constantes: TableHabits
    busiest: list[int]  # practitioners (plageconsult.chir_id), most recent consultations first
    measures: tuple[str, ...]  # the vital signs the site usually records
    ta_mmhg: bool  # blood pressure stored in mmHg ("130|80") rather than cmHg ("13|8")
    motif: str | None  # a reason for consultation most of the site's consultations share
    class_ids: dict[str, int]
    addresses: dict[int, bytes | None]


@dataclass(frozen=True, slots=True)
class Slot:
    plageconsult_id: int
    practitioner: int
    now: datetime  # to the second: creation dates, the vital signs, the history

    @property
    def minute(self) -> datetime:
        """heure and arrivee: do_consult_now.php takes the time as "%H:%M:00"."""
        return self.now.replace(second=0)


def read_clinic(target: SqlTarget, host: MediboardHost, source_name: str) -> Clinic:
    missing = [t for t in TABLES if target.table(t) is None]
    if missing:
        raise SourceError(f"source '{source_name}': no table {', '.join(missing)}: this Mediboard has no "
                          "consultation module (dPcabinet) for a footprint")
    consult, plage = target.table("consultation"), target.table("plageconsult")
    engine = target.engine
    consultations = sample_habits(engine, consult, where=consult.c.annule == "0", limit=SAMPLE)
    constantes = sample_habits(engine, target.table("constantes_medicales"), limit=SAMPLE)
    plages = [row["plageconsult_id"] for row in consultations.rows]
    with engine.connect() as conn:
        chirs = Counter(r.chir_id for r in conn.execute(
            sa.select(plage.c.chir_id).join(consult, consult.c.plageconsult_id == plage.c.plageconsult_id)
            .where(plage.c.plageconsult_id.in_(plages or [0]))))
    measures = tuple(m for m in MEASURES if m in constantes.rows[0] and (constantes.filled_share_where(m, {}) or 0)
                     >= 0.5) if constantes.rows else ("poids", "taille", "ta", "pouls")
    pressures = [row["ta"] for row in constantes.rows if row.get("ta")]
    motif, share = consultations["motif"].modal() if consultations.rows else (None, 0.0)
    class_ids: dict[str, int] = {}
    if host.log_table == "user_action":
        classes = target.table("object_class")
        with engine.connect() as conn:
            class_ids = {r.object_class: r.object_class_id for r in conn.execute(
                sa.select(classes.c.object_class, classes.c.object_class_id)
                .where(classes.c.object_class.in_(CLASSES)))}
        if len(class_ids) < len(CLASSES):
            raise ConfigError(f"source '{source_name}': object_class has no row for "
                              f"{', '.join(c for c in CLASSES if c not in class_ids)}: this Mediboard never logged "
                              "one in user_action")
    return Clinic(
        consultations=consultations, constantes=constantes, busiest=[c for c, _ in chirs.most_common()],
        measures=measures,
        ta_mmhg=bool(pressures) and sum(_systole(p) > 50 for p in pressures) > len(pressures) / 2,
        motif=motif if motif and share >= 0.2 else None, class_ids=class_ids,
        addresses={c: usual_address(target, c, host.log_table) for c, _ in chirs.most_common(5)})


def open_slot(target: SqlTarget, clinic: Clinic, practitioner: int | None, registered: datetime | None,
              source_name: str, now: datetime) -> Slot:
    """A consultation range of a practitioner of the site open at ``now`` (the database server's
    time), after the patient's registration."""
    plage = target.table("plageconsult")
    with target.engine.connect() as conn:
        time = now.replace(second=0).time()
        where = [plage.c.date == now.date(), plage.c.debut <= time, plage.c.fin > time]
        if "agenda_praticien_id" in plage.c:
            where.append(plage.c.agenda_praticien_id.is_(None))
        if practitioner is not None:
            where.append(plage.c.chir_id == practitioner)
        ranges = conn.execute(sa.select(plage.c.plageconsult_id, plage.c.chir_id).where(*where)).all()
    if registered is not None and now <= registered:
        raise SourceError(f"source '{source_name}': the canary was registered at {registered:%Y-%m-%d %H:%M:%S}; "
                          "its consultation must come later")
    rank = {c: n for n, c in enumerate(clinic.busiest)}
    ranges = sorted(ranges, key=lambda r: (rank.get(r.chir_id, len(rank)), r.plageconsult_id))
    if not ranges:
        who = f"practitioner {practitioner}" if practitioner is not None else "any practitioner"
        raise SourceError(f"source '{source_name}': no consultation range (plageconsult) of {who} is open now "
                          f"({now:%Y-%m-%d %H:%M}): add the footprint during consultation hours")
    return Slot(plageconsult_id=ranges[0].plageconsult_id, practitioner=ranges[0].chir_id, now=now)


def footprint_rows(identity: Identity, host: MediboardHost, clinic: Clinic, slot: Slot, patient_id: int,
                   tables: dict[str, sa.Table], tag: str) -> list[RowPlan]:
    """The consultation and its vital signs, each with its history entry, in Mediboard's order.

    ``tag`` makes the aliases unique within the canary's placement (one footprint per call).
    """
    keys = {"consultation": "consultation_id", "constantes_medicales": "constantes_medicales_id", **LOG_KEYS}
    rows: list[RowPlan] = []

    def add(table: str, values: dict[str, Any], alias: str, refs: dict[str, Ref] | None = None) -> None:
        key = keys[table]
        rows.append(RowPlan(table, (key,), {k: v for k, v in values.items() if k in tables[table].c},
                            generated={key: Generated(AUTOINCREMENT)}, refs=refs or {}, alias=alias))

    journal = Journal(host, slot.now, add, prefix=f"{tag}_", class_ids=clinic.class_ids, addresses=clinic.addresses)
    consult = f"{tag}_consultation"
    add("consultation", consultation_values(clinic, slot, patient_id, tables["consultation"]), consult)
    journal.create(consult, "consultation_id", "CConsultation", slot.practitioner)
    measures = f"{tag}_constantes"
    add("constantes_medicales", constantes_values(identity, clinic, slot, patient_id,
                                                  tables["constantes_medicales"]),
        measures, {"context_id": Ref(consult, "consultation_id")})
    journal.create(measures, "constantes_medicales_id", "CConstantesMedicales", slot.practitioner)
    return rows


def consultation_values(clinic: Clinic, slot: Slot, patient_id: int, table: sa.Table) -> dict[str, Any]:
    """do_consult_now.php, then CConsultation::store on creation."""
    values = {"plageconsult_id": slot.plageconsult_id, "patient_id": patient_id, "heure": slot.minute.time(),
              "arrivee": slot.minute, "duree": 1, "chrono": "32", "annule": "0", "type": "classique",
              "motif": clinic.motif, "owner_id": slot.practitioner, "creation_date": slot.now}
    return {k: v for k, v in values.items() if k in table.c}


def constantes_values(identity: Identity, clinic: Clinic, slot: Slot, patient_id: int,
                      table: sa.Table) -> dict[str, Any]:
    """CConstantesMedicales::store on creation: the measures the site takes, plausible for this patient."""
    rnd = random.Random(identity.nir)
    male = identity.sex is Sex.MALE
    age = _age(identity.birth_date, slot.now.date())
    height = rnd.gauss(176 if male else 163, 7) if age >= 16 else 80 + age * 5.5
    bmi = rnd.gauss(26 if age >= 40 else 23, 3) if age >= 16 else 16.5
    systole = max(95, min(175, round(rnd.gauss(118 + max(0, age - 30) * 0.5, 12))))
    diastole = max(55, min(105, round(systole * 0.62 + rnd.gauss(0, 5))))
    measured = {
        "poids": round(bmi * (height / 100) ** 2, 1),
        "taille": round(height),
        "ta": f"{systole}|{diastole}" if clinic.ta_mmhg else f"{round(systole / 10)}|{round(diastole / 10)}",
        "pouls": max(52, min(110, round(rnd.gauss(74, 9)))),
        "temperature": round(rnd.uniform(36.3, 37.3), 1),
        "spo2": float(rnd.choice((96, 97, 98, 98, 99, 99, 100))),
    }
    values: dict[str, Any] = {"patient_id": patient_id, "datetime": slot.now, "context_class": "CConsultation",
                              "user_id": slot.practitioner, "creation_date": slot.now}
    values.update({m: measured[m] for m in clinic.measures})
    return {k: v for k, v in values.items() if k in table.c}


def _systole(pressure: str) -> float:
    """The systole of a stored "systole|diastole" (0 when unreadable)."""
    try:
        return float(pressure.split("|")[0])
    except ValueError:
        return 0.0


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
