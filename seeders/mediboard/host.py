"""What one Mediboard site does, read once when the seeder opens.

Mediboard's schema comes from its PHP classes (each module's setup.php), so
the seeder learns the rest from the site itself: how recent patients are
filled, which tag its IPPs use in ``id_sante400``, who creates patients (the
``user_log`` 'create' entries) and from which address, how its medical
records and allergies look, which Soundex2 variant its PHP computed, and
whether its tables can roll back (Mediboard creates MyISAM tables).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from canary.errors import ConfigError
from seeders.sql.blend import TableHabits, sample_habits
from seeders.mediboard.soundex2 import soundex2
from seeders.sql.target import SqlTarget

SAMPLE = 200
WRITTEN = ("patients", "user_log", "id_sante400", "dossier_medical", "antecedent")


@dataclass(slots=True)
class MediboardHost:
    patients: TableHabits
    dossiers: TableHabits
    allergies: TableHabits
    ipp_tag: str | None  # None: the site keeps no IPP in id_sante400
    user_id: int
    ip_address: bytes | None  # where the creating user works from (user_log.ip_address)
    soundex_accents: str  # "strip" or "drop", as the site's PHP computed Soundex2
    transactional: bool  # every written table rolls back (InnoDB); MyISAM does not


def read_host(target: SqlTarget, settings: dict[str, Any], source_name: str) -> MediboardHost:
    engine = target.engine
    patients_table = target.table("patients")
    patients = sample_habits(engine, patients_table, limit=SAMPLE)
    recent = [row["patient_id"] for row in patients.rows]
    dossier = target.table("dossier_medical")
    antecedent = target.table("antecedent")
    user_id = settings["user_id"] if settings["user_id"] is not None else _creator(target, recent)
    if user_id is None:
        raise ConfigError(f"source '{source_name}': no patient creation in user_log to learn the creating user "
                          "from: set user_id (users.user_id of a Mediboard user)")
    return MediboardHost(
        patients=patients,
        dossiers=sample_habits(engine, dossier, where=dossier.c.object_class == "CPatient", limit=SAMPLE),
        allergies=sample_habits(engine, antecedent, where=antecedent.c.type == "alle", limit=SAMPLE),
        ipp_tag=_ipp_tag(target, settings, recent),
        user_id=user_id,
        ip_address=_usual_address(target, user_id),
        soundex_accents=_soundex_variant(patients),
        transactional=_transactional(target),
    )


def _ipp_tag(target: SqlTarget, settings: dict[str, Any], recent: list[int]) -> str | None:
    """The tag of the site's IPPs: the option ($g: the establishment), else the usual tag of recent patients."""
    tag = settings["ipp_tag"]
    if tag not in ("", "auto"):
        return tag.replace("$g", str(settings["group_id"]))
    if tag == "" or not recent:
        return None
    idex = target.table("id_sante400")
    with target.engine.connect() as conn:
        tags = Counter(r.tag for r in conn.execute(
            sa.select(idex.c.tag).where(idex.c.object_class == "CPatient", idex.c.object_id.in_(recent))))
    tags.pop("merged", None)  # left by patient merges, not an identifier domain
    tags.pop(None, None)
    return tags.most_common(1)[0][0] if tags else None


def _creator(target: SqlTarget, recent: list[int]) -> int | None:
    log = target.table("user_log")
    with target.engine.connect() as conn:
        users = Counter(r.user_id for r in conn.execute(
            sa.select(log.c.user_id).where(log.c.object_class == "CPatient", log.c.type == "create",
                                           log.c.object_id.in_(recent or [0]))))
    return users.most_common(1)[0][0] if users else None


def _usual_address(target: SqlTarget, user_id: int) -> bytes | None:
    log = target.table("user_log")
    if "ip_address" not in log.c:
        return None
    with target.engine.connect() as conn:
        addresses = Counter(r.ip_address for r in conn.execute(
            sa.select(log.c.ip_address).where(log.c.user_id == user_id)
            .order_by(log.c.user_log_id.desc()).limit(SAMPLE)))
    return addresses.most_common(1)[0][0] if addresses else None


def _soundex_variant(patients: TableHabits) -> str:
    """Which Soundex2 variant gives back the codes stored with the site's accented names."""
    scores = Counter()
    for row in patients.rows:
        nom, code = row.get("nom") or "", row.get("nom_soundex2")
        if code is None or nom.isascii():
            continue
        for variant in ("strip", "drop"):
            scores[variant] += soundex2(nom, variant) == code
    return "drop" if scores["drop"] > scores["strip"] else "strip"


def _transactional(target: SqlTarget) -> bool:
    if target.dialect not in ("mysql", "mariadb"):
        return True
    with target.engine.connect() as conn:
        engines = conn.execute(sa.text(
            "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN "
            "('patients', 'user_log', 'id_sante400', 'dossier_medical', 'antecedent')")).scalars().all()
    return all(str(e).lower() == "innodb" for e in engines)
