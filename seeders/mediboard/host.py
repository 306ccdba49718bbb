"""What one Mediboard site does, read once when the seeder opens.

Mediboard's schema comes from its PHP classes (each module's setup.php), so
the seeder learns the rest from the site itself: its dPpatients version
(version.py), how recent patients are filled, which tag its IPPs use in
``id_sante400``, where it logs (``user_log``, or ``user_action`` when the
instance config ``activer_user_action`` is on), who creates patients and from
which address, its identity-vigilance mode, how its medical records and
allergies look, which Soundex2 variant its PHP computed, and whether its
tables can roll back (Mediboard creates MyISAM tables).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from canary.errors import ConfigError
from seeders.sql.blend import TableHabits, sample_habits
from seeders.mediboard import vigilance
from seeders.mediboard.soundex2 import soundex2
from seeders.mediboard.version import Schema
from seeders.sql.target import SqlTarget

SAMPLE = 200
# Classes whose objects a new patient creates, logged by CStoredObject::store.
LOGGED = ("CPatient", "CSourceIdentite", "CIdSante400", "CDossierMedical", "CAntecedent")


@dataclass(slots=True)
class MediboardHost:
    schema: Schema
    log_table: str  # "user_log", or "user_action" (+ user_action_data) when activer_user_action is on
    class_ids: dict[str, int]  # object_class.object_class_id of each LOGGED class (user_action sites)
    vigilance: str  # identity-vigilance mode: light, medium or strict
    patients: TableHabits
    dossiers: TableHabits
    allergies: TableHabits
    ipp_tag: str | None  # None: the site keeps no IPP in id_sante400
    user_id: int
    ip_address: bytes | None  # where the creating user works from (user_log.ip_address)
    soundex_accents: str  # "strip" or "drop", as the site's PHP computed Soundex2
    transactional: bool  # every written table rolls back (InnoDB); MyISAM does not


def read_host(target: SqlTarget, settings: dict[str, Any], source_name: str, schema: Schema) -> MediboardHost:
    engine = target.engine
    patients_table = target.table("patients")
    patients = sample_habits(engine, patients_table, limit=SAMPLE)
    recent = [row["patient_id"] for row in patients.rows]
    dossier = target.table("dossier_medical")
    antecedent = target.table("antecedent")
    log_table = _log_table(target, settings["log_table"], recent, source_name)
    class_ids = _class_ids(target, source_name, schema) if log_table == "user_action" else {}
    user_id = settings["user_id"] if settings["user_id"] is not None else _creator(
        target, recent, patients, log_table, class_ids)
    if user_id is None:
        raise ConfigError(f"source '{source_name}': no patient creation in {log_table} to learn the creating user "
                          "from: set user_id (users.user_id of a Mediboard user)")
    return MediboardHost(
        schema=schema,
        log_table=log_table,
        class_ids=class_ids,
        vigilance=_vigilance(target, settings, patients, schema),
        patients=patients,
        dossiers=sample_habits(engine, dossier, where=dossier.c.object_class == "CPatient", limit=SAMPLE),
        allergies=sample_habits(engine, antecedent, where=antecedent.c.type == "alle", limit=SAMPLE),
        ipp_tag=_ipp_tag(target, settings, recent),
        user_id=user_id,
        ip_address=usual_address(target, user_id, log_table),
        soundex_accents=_soundex_variant(patients),
        transactional=_transactional(target, written_tables(schema, log_table)),
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


def _log_table(target: SqlTarget, choice: str, recent: list[int], source_name: str) -> str:
    """Where CStoredObject::store logs: user_action when the instance config activer_user_action is on.

    The config lives in includes/config.php, or in the config_db table when the
    instance keeps its config in the database; without it, the table that holds
    the creations of the site's recent patients tells.
    """
    has_actions = target.table("user_action") is not None and target.table("object_class") is not None
    if choice != "auto":
        if choice == "user_action" and not has_actions:
            raise ConfigError(f"source '{source_name}': log_table=user_action but the database has no user_action "
                              "and object_class tables (system module before 1.2.66)")
        return choice
    if not has_actions:
        return "user_log"
    config = target.table("config_db")
    if config is not None:
        with target.engine.connect() as conn:
            value = conn.execute(sa.select(config.c.value).where(config.c.key == "activer_user_action")).scalar()
        if value is not None:
            return "user_action" if str(value).strip() == "1" else "user_log"
    actions, classes, log = target.table("user_action"), target.table("object_class"), target.table("user_log")
    ids = recent or [0]
    with target.engine.connect() as conn:
        in_actions = conn.execute(sa.select(sa.func.count()).select_from(
            actions.join(classes, classes.c.object_class_id == actions.c.object_class_id)).where(
            classes.c.object_class == "CPatient", actions.c.type == "create", actions.c.object_id.in_(ids))).scalar()
        in_log = conn.execute(sa.select(sa.func.count()).select_from(log).where(
            log.c.object_class == "CPatient", log.c.type == "create", log.c.object_id.in_(ids))).scalar()
    return "user_action" if in_actions > in_log else "user_log"


def _class_ids(target: SqlTarget, source_name: str, schema: Schema) -> dict[str, int]:
    """object_class ids of the classes a new patient logs (CObjectClass::getID)."""
    classes = target.table("object_class")
    wanted = [c for c in LOGGED if c != "CSourceIdentite" or schema.sources]
    with target.engine.connect() as conn:
        found = {r.object_class: r.object_class_id for r in conn.execute(
            sa.select(classes.c.object_class, classes.c.object_class_id).where(classes.c.object_class.in_(wanted)))}
    missing = [c for c in wanted if c not in found]
    if missing:
        # CObjectClass::getID would add the row; a canary must not own a row real logs then point to.
        raise ConfigError(f"source '{source_name}': object_class has no row for {', '.join(missing)}: this "
                          "Mediboard never logged one in user_action; set log_table=user_log or create one "
                          "such object in Mediboard first")
    return found


def _creator(target: SqlTarget, recent: list[int], patients: TableHabits, log_table: str,
             class_ids: dict[str, int]) -> int | None:
    """Who creates the site's patients: patients.creator_id (3.35+), else their 'create' log entries."""
    creators = Counter(row.get("creator_id") for row in patients.rows if row.get("creator_id"))
    if creators:
        return creators.most_common(1)[0][0]
    log = target.table(log_table)
    if log_table == "user_action":
        where = sa.and_(log.c.object_class_id == class_ids["CPatient"], log.c.type == "create",
                        log.c.object_id.in_(recent or [0]))
    else:
        where = sa.and_(log.c.object_class == "CPatient", log.c.type == "create", log.c.object_id.in_(recent or [0]))
    with target.engine.connect() as conn:
        users = Counter(r.user_id for r in conn.execute(sa.select(log.c.user_id).where(where)))
    return users.most_common(1)[0][0] if users else None


def usual_address(target: SqlTarget, user_id: int, log_table: str) -> bytes | None:
    log = target.table(log_table)
    if "ip_address" not in log.c:
        return None
    key = log.c.user_action_id if log_table == "user_action" else log.c.user_log_id
    with target.engine.connect() as conn:
        addresses = Counter(r.ip_address for r in conn.execute(
            sa.select(log.c.ip_address).where(log.c.user_id == user_id).order_by(key.desc()).limit(SAMPLE)))
    return addresses.most_common(1)[0][0] if addresses else None


def _vigilance(target: SqlTarget, settings: dict[str, Any], patients: TableHabits, schema: Schema) -> str:
    """The identity-vigilance mode: the option, else as the site's code decides it.

    The 2023 code (4.94) has no config and is always strict; 2015 and 2021 read the
    group config 'dPpatients CPatient mode_identito_vigilance' (table configuration,
    default light). Without a config row, the site's own names tell.
    """
    if settings["identito_vigilance"] != "auto":
        return settings["identito_vigilance"]
    if schema.version >= (4, 94):
        return "strict"  # CPatient::applyModeIdentitoVigilance: $mode ?: "strict"
    config = target.table("configuration")
    if config is not None and {"feature", "value", "object_class", "object_id"} <= set(config.c.keys()):
        with target.engine.connect() as conn:
            rows = conn.execute(sa.select(config.c.value, config.c.object_class, config.c.object_id).where(
                config.c.feature == "dPpatients CPatient mode_identito_vigilance")).all()
        group = [r.value for r in rows if r.object_class == "CGroups" and r.object_id == settings["group_id"]]
        anywhere = [r.value for r in rows if r.object_class is None]
        for value in group + anywhere:
            if value in vigilance.MODES:
                return value
    guessed = vigilance.guess_mode([(row.get("nom") or "", row.get("prenom") or "") for row in patients.rows])
    return guessed or "light"


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


def written_tables(schema: Schema, log_table: str) -> tuple[str, ...]:
    """The tables a new patient gets rows in on this site (its version, its history table)."""
    tables = ["patients", log_table]
    tables += ["user_action_data"] if log_table == "user_action" else []
    tables += ["patient_signature"] if schema.signatures else []
    tables += ["source_identite"] if schema.sources else []
    return tuple(tables + ["id_sante400", "dossier_medical", "antecedent"])


def _transactional(target: SqlTarget, tables: tuple[str, ...]) -> bool:
    if target.dialect not in ("mysql", "mariadb"):
        return True
    with target.engine.connect() as conn:
        engines = conn.execute(sa.text(
            "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names")
            .bindparams(sa.bindparam("names", expanding=True)), {"names": list(tables)}).scalars().all()
    return all(str(e).lower() == "innodb" for e in engines)
