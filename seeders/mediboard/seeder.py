"""The Mediboard seeder: patients written the way Mediboard (OpenXtrem) stores them.

The site's dPpatients version is read from ``modules`` first (version.py):
a version outside the supported ranges is refused before anything else. See
seeders/mediboard/rows.py for the rows and their order, docs/seeders/
mediboard.md for the options and the supported versions. The IPP is the next number after the site's
latest ones; Mediboard's own incrementer skips a number already taken
(CIncrementer::generateIdex checks the idex is free), so no real patient can
get the same IPP later.

Mediboard creates MyISAM tables, which ignore transactions: when such a site
fails in the middle of a patient, the rows already written are found again
(``locate``) and deleted, so the site keeps the whole patient or nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from canary.errors import ConfigError, SourceError
from canary.model import Identity, Placement
from seeders.sql import appsql
from seeders.sql.access import PLANT_RIGHTS, access_problems
from seeders.sql.appsql import ApplicationSqlSeeder
from seeders.base import SeederOption
from seeders.sql.blend import next_code
from seeders.mediboard import footprint, version, vigilance
from seeders.mediboard.host import SAMPLE, MediboardHost, read_host, written_tables
from seeders.mediboard.locate import placement_rows
from seeders.mediboard.rows import Plant, build_rows

# Every table a new patient may touch; which of them a site gets depends on its version and log table.
WRITTEN = ("patients", "user_log", "user_action", "user_action_data", "patient_signature", "source_identite",
           "id_sante400", "dossier_medical", "antecedent")


class MediboardSeeder(ApplicationSqlSeeder):
    name = "mediboard"
    summary = ("Mediboard / OX (MariaDB/MySQL), dPpatients 2.37-4.x: patients, signatures, identity source, IPP, "
               "medical record, allergies and their user_log or user_action entries.")
    application = "Mediboard"
    written_tables = WRITTEN
    required_columns = {
        "patients": ("patient_id", "nom", "nom_jeune_fille", "prenom", "naissance", "sexe", "civilite", "adresse",
                     "cp", "ville", "tel", "tel2", "email", "matricule", "medecin_traitant", "nom_soundex2",
                     "prenom_soundex2", "nomjf_soundex2"),
        "id_sante400": ("id_sante400_id", "object_class", "object_id", "tag", "id400", "last_update"),
        "dossier_medical": ("dossier_medical_id", "object_class", "object_id", "groupe_sanguin", "rhesus"),
        "antecedent": ("antecedent_id", "type", "rques", "dossier_medical_id"),
        "user_log": ("user_log_id", "user_id", "object_class", "object_id", "type", "date", "fields"),
        "medecin": ("medecin_id", "nom", "prenom"),
    }
    options = (
        SeederOption("user_id", "users.user_id of the Mediboard user who creates the patients (user_log, "
                     "antecedent.owner_id); auto: who created the site's recent patients", default="auto"),
        SeederOption("ipp_tag", "id_sante400 tag of the IPP; $g stands for group_id; auto: the tag of the "
                     "recent patients' IPPs; empty: no IPP", default="auto"),
        SeederOption("group_id", "establishment (groups_mediboard.group_id) put in place of $g in ipp_tag",
                     default="1"),
        SeederOption("medecin_id", "medecin.medecin_id written as medecin_traitant; auto: the identity's GP when "
                     "the medecin table knows them (RPPS, else name), else NULL; none: NULL", default="auto"),
        SeederOption("create_allergies", "write the identity's allergies as antecedents of type 'alle'",
                     default="yes"),
        SeederOption("log_table", "where Mediboard logs (instance config activer_user_action): user_log or "
                     "user_action; auto: config_db, else where the recent patients' creations are", default="auto"),
        SeederOption("footprint_practitioner", "plageconsult.chir_id of the practitioner who sees canaries in "
                     "their footprint consultation; auto: the busiest practitioner with a range open now",
                     default="auto"),
        SeederOption("identito_vigilance", "identity-vigilance mode names are written in: light, medium or strict; "
                     "auto: strict from dPpatients 4.94, before the group config, else the site's recent patients, "
                     "else light", default="auto"),
    )
    option_parsers = {
        "user_id": appsql.parse_auto_int,
        "ipp_tag": appsql.parse_text,
        "group_id": appsql.parse_int,
        "medecin_id": appsql.parse_auto_int_or_none,
        "create_allergies": appsql.parse_bool,
        "log_table": appsql.parse_choice("auto", "user_log", "user_action"),
        "footprint_practitioner": appsql.parse_auto_int,
        "identito_vigilance": appsql.parse_choice("auto", *vigilance.MODES),
    }

    host: MediboardHost
    clinic: footprint.Clinic | None = None

    def _prepare(self) -> None:
        target = self._ready()
        self.clinic = None
        schema = version.detect(target, self.source.name)
        self.host = read_host(target, self.settings, self.source.name, schema)
        self.tables = {name: target.table(name) for name in WRITTEN if target.table(name) is not None}
        if self.settings["ipp_tag"] not in ("", "auto") and self._next_ipp() is None:
            raise ConfigError(f"source '{self.source.name}': no patient has an IPP tagged {self.host.ipp_tag!r} in "
                              "id_sante400 to number the next one after: set ipp_tag to the tag the IPPs use "
                              "(or empty for none)")
        medecin, doctors = self.settings["medecin_id"], target.table("medecin")
        if isinstance(medecin, int) and not self._read_rows(
                sa.select(doctors.c.medecin_id).where(doctors.c.medecin_id == medecin)):
            raise ConfigError(f"source '{self.source.name}': option medecin_id={medecin}: no such medecin")

    def written(self) -> tuple[str, ...]:
        """The tables this site's patients get rows in (its version, its log table)."""
        return written_tables(self.host.schema, self.host.log_table)

    def check_access(self) -> list[str]:
        wanted = {table: PLANT_RIGHTS for table in self.written()}
        if self.host.schema.sources:  # the patient is bound to its identity source once that exists
            wanted["patients"] = PLANT_RIGHTS + ("UPDATE",)
        return access_problems(self._ready(), wanted)

    # -- planting ------------------------------------------------------------
    def _now(self) -> datetime:
        """The database server's time, to the second: Mediboard dates what it writes by its
        server's clock (CMbDT::dateTime), and so does the seeder (registration, footprint)."""
        with self._ready().engine.connect() as conn:
            return conn.execute(sa.select(sa.func.now())).scalar().replace(microsecond=0)

    def _rows(self, identity: Identity, *, dry_run: bool) -> list:
        plant = Plant(now=self._now(), ipp=self._next_ipp(), medecin_id=self._medecin(identity))
        return build_rows(identity, self.host, plant, self.tables, self.settings["create_allergies"])

    def _next_ipp(self) -> str | None:
        """The number after the site's latest IPPs, skipping any already given."""
        tag = self.host.ipp_tag
        if not tag:
            return None
        idex = self.tables["id_sante400"]
        where = sa.and_(idex.c.object_class == "CPatient", idex.c.tag == tag)
        recent = [r["id400"] for r in self._read_rows(
            sa.select(idex.c.id400).where(where).order_by(idex.c.id_sante400_id.desc()).limit(SAMPLE))]
        code = next_code(recent)
        while code is not None and self._read_rows(sa.select(idex.c.id400).where(where, idex.c.id400 == code)):
            code = next_code([code])
        return code

    def _medecin(self, identity: Identity) -> int | None:
        choice = self.settings["medecin_id"]
        if choice == "none":
            return None
        if choice is not None:
            return choice
        medecin = self._ready().table("medecin")
        gp = identity.gp
        conditions = [sa.and_(sa.func.upper(medecin.c.nom) == gp.last_name.upper(),
                              sa.func.lower(medecin.c.prenom) == gp.first_name.lower())]
        if "rpps" in medecin.c and gp.rpps.isdigit():
            conditions.insert(0, medecin.c.rpps == int(gp.rpps))
        for condition in conditions:
            found = self._read_rows(sa.select(medecin.c.medecin_id).where(condition).limit(2))
            if len(found) == 1:
                return found[0]["medecin_id"]
        return None

    def plant(self, identity: Identity) -> Placement:
        rows = self._fit(self._rows(identity, dry_run=False))
        try:
            placed = self._ready().insert(rows)
        except SourceError:
            if not self.host.transactional:
                # MyISAM kept what went in before the failure: take it out again.
                partial = self.locate(identity)
                if partial is not None:
                    self.retire(partial)
            raise
        if self.host.schema.sources:
            try:
                placed = self._bind_source(placed)
            except SourceError:
                self.retire(Placement(rows=placed))  # committed already, even on InnoDB
                raise
        return Placement(rows=placed)

    # -- clinical footprint (issue #12) ----------------------------------------
    def add_footprint(self, identity: Identity, placement: Placement) -> Placement:
        """A consultation with vital signs by a practitioner of the site, now, after the registration.

        Returns the placement with the new rows appended (the caller records it):
        verify checks them and retire removes them with the rest of the canary.
        """
        target = self._ready()
        if self.clinic is None:
            self.clinic = footprint.read_clinic(target, self.host, self.source.name)
        for name in footprint.TABLES:
            self.tables.setdefault(name, target.table(name))
        patient = next(r for r in placement.rows if r["table"] == "patients")
        pid = patient["key"]["patient_id"]
        slot = footprint.open_slot(target, self.clinic, self.settings["footprint_practitioner"],
                                   _registered(placement), self.source.name, self._now())
        tag = f"fp{sum(r['table'] == 'consultation' for r in placement.rows) + 1}"
        rows = self._fit(footprint.footprint_rows(identity, self.host, self.clinic, slot, pid, self.tables, tag))
        known = {(r["table"], tuple(sorted(r["key"].items()))) for r in placement.rows}
        try:
            placed = target.insert(rows)
        except SourceError:
            # A MyISAM table kept the first rows: the canary's, found through it, not yet in the placement.
            found = placement_rows(self._read_rows, self.tables, self.host, self._patient(pid),
                                   self.clinic.class_ids)
            extra = [r for r in found if (r["table"], tuple(sorted(r["key"].items()))) not in known]
            if extra:
                self.retire(Placement(rows=tuple(extra)))
            raise
        return Placement(rows=tuple(placement.rows) + tuple(placed), extra=placement.extra)

    def _footprint_ids(self) -> dict[str, int]:
        """object_class ids of the footprint's classes, once the footprint tables are known (locate)."""
        target = self._ready()
        if self.clinic is None and all(target.table(t) is not None for t in footprint.TABLES):
            try:
                self.clinic = footprint.read_clinic(target, self.host, self.source.name)
            except ConfigError:
                return {}  # no footprint was ever logged in user_action here
            for name in footprint.TABLES:
                self.tables.setdefault(name, target.table(name))
        return self.clinic.class_ids if self.clinic is not None else {}

    def _patient(self, patient_id: int) -> dict[str, Any]:
        patients = self.tables["patients"]
        return self._read_rows(sa.select(patients).where(patients.c.patient_id == patient_id))[0]

    def _bind_source(self, placed: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        """patients.source_identite_id = the new source, as manageSource stores it once the source exists."""
        patient = next(r for r in placed if r["table"] == "patients")
        source = next(r for r in placed if r["table"] == "source_identite")
        patients, source_id = self.tables["patients"], source["key"]["source_identite_id"]
        try:
            with self._ready().engine.begin() as conn:
                conn.execute(patients.update().where(
                    patients.c.patient_id == patient["key"]["patient_id"],
                    patients.c.source_identite_id.is_(None)).values(source_identite_id=source_id))
        except sa.exc.StatementError as err:
            raise SourceError(f"source '{self.source.name}': binding the identity source failed: "
                              f"{str(getattr(err, 'orig', err)).splitlines()[0][:200]}") from None
        bound = {**patient, "values": {**patient["values"], "source_identite_id": source_id}}
        return tuple(bound if r is patient else r for r in placed)

    # -- collisions and recovery -------------------------------------------
    def collides(self, identity: Identity) -> bool:
        patients, mode = self.tables["patients"], self.host.vigilance
        names = sorted({n for name in (identity.last_name, identity.birth_name)
                        for n in (name.upper(), vigilance.apply_mode(name, firstname=False, mode=mode))})
        firsts = sorted({identity.first_name.lower(),
                         vigilance.apply_mode(identity.first_name, firstname=True, mode=mode).lower()})
        fmt = self.host.patients["naissance"].date_format or "%Y-%m-%d"
        query = sa.select(patients.c.patient_id).where(sa.or_(
            patients.c.matricule == identity.nir,
            sa.and_(sa.or_(sa.func.upper(patients.c.nom).in_(names),
                           sa.func.upper(patients.c.nom_jeune_fille).in_(names)),
                    sa.func.lower(patients.c.prenom).in_(firsts),
                    patients.c.naissance == identity.birth_date.strftime(fmt)),
        )).limit(1)
        return bool(self._read_rows(query))

    def locate(self, identity: Identity) -> Placement | None:
        """The rows of a patient planted for ``identity`` but never recorded (found by NIR or e-mail)."""
        patients = self.tables["patients"]
        for condition in (patients.c.matricule == identity.nir, patients.c.email == identity.email):
            found = self._read_rows(sa.select(patients).where(condition).limit(2))
            if len(found) == 1:
                return Placement(rows=tuple(placement_rows(self._read_rows, self.tables, self.host, found[0],
                                                           self._footprint_ids())))
        return None


def _registered(placement: Placement) -> datetime | None:
    """When the canary was registered: patients.creation_date (3.35+), else its 'create' history entry."""
    for row in placement.rows:
        values = row["values"]
        if row["table"] == "patients" and values.get("creation_date"):
            return datetime.fromisoformat(str(values["creation_date"]))
        if row["table"] in ("user_log", "user_action") and values.get("type") == "create":
            return datetime.fromisoformat(str(values["date"]))
    return None
