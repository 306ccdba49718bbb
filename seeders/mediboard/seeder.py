"""The Mediboard seeder: patients written the way Mediboard (OpenXtrem) stores them.

See seeders/mediboard/rows.py for the rows and their order, docs/seeders/
mediboard.md for the options. The IPP is the next number after the site's
latest ones; Mediboard's own incrementer skips a number already taken
(CIncrementer::generateIdex checks the idex is free), so no real patient can
get the same IPP later.

Mediboard creates MyISAM tables, which ignore transactions: when such a site
fails in the middle of a patient, the rows already written are found again
(``locate``) and deleted, so the site keeps the whole patient or nothing.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from canary.errors import ConfigError, SourceError
from canary.model import Identity, Placement
from seeders.sql import appsql
from seeders.sql.appsql import ApplicationSqlSeeder
from seeders.base import SeederOption
from seeders.sql.blend import next_code
from seeders.mediboard.host import SAMPLE, WRITTEN, MediboardHost, read_host
from seeders.mediboard.rows import UNCHECKED, Plant, build_rows
from seeders.sql.values import to_json


class MediboardSeeder(ApplicationSqlSeeder):
    name = "mediboard"
    summary = "Mediboard (MariaDB/MySQL): patients, IPP, medical record, allergies and their user_log entries."
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
    )
    option_parsers = {
        "user_id": appsql.parse_auto_int,
        "ipp_tag": appsql.parse_text,
        "group_id": appsql.parse_int,
        "medecin_id": appsql.parse_auto_int_or_none,
        "create_allergies": appsql.parse_bool,
    }

    host: MediboardHost

    def _prepare(self) -> None:
        target = self._ready()
        self.host = read_host(target, self.settings, self.source.name)
        self.tables = {name: target.table(name) for name in WRITTEN}
        if self.settings["ipp_tag"] not in ("", "auto") and self._next_ipp() is None:
            raise ConfigError(f"source '{self.source.name}': no patient has an IPP tagged {self.host.ipp_tag!r} in "
                              "id_sante400 to number the next one after: set ipp_tag to the tag the IPPs use "
                              "(or empty for none)")
        medecin, doctors = self.settings["medecin_id"], target.table("medecin")
        if isinstance(medecin, int) and not self._read_rows(
                sa.select(doctors.c.medecin_id).where(doctors.c.medecin_id == medecin)):
            raise ConfigError(f"source '{self.source.name}': option medecin_id={medecin}: no such medecin")

    # -- planting ------------------------------------------------------------
    def _rows(self, identity: Identity, *, dry_run: bool) -> list:
        with self._ready().engine.connect() as conn:
            now = conn.execute(sa.select(sa.func.now())).scalar().replace(microsecond=0)
        plant = Plant(now=now, ipp=self._next_ipp(), medecin_id=self._medecin(identity))
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
            return Placement(rows=self._ready().insert(rows))
        except SourceError:
            if not self.host.transactional:
                # MyISAM kept what went in before the failure: take it out again.
                partial = self.locate(identity)
                if partial is not None:
                    self.retire(partial)
            raise

    # -- collisions and recovery -------------------------------------------
    def collides(self, identity: Identity) -> bool:
        patients = self.tables["patients"]
        names = [identity.last_name.upper(), identity.birth_name.upper()]
        fmt = self.host.patients["naissance"].date_format or "%Y-%m-%d"
        query = sa.select(patients.c.patient_id).where(sa.or_(
            patients.c.matricule == identity.nir,
            sa.and_(sa.or_(sa.func.upper(patients.c.nom).in_(names),
                           sa.func.upper(patients.c.nom_jeune_fille).in_(names)),
                    sa.func.lower(patients.c.prenom) == identity.first_name.lower(),
                    patients.c.naissance == identity.birth_date.strftime(fmt)),
        )).limit(1)
        return bool(self._read_rows(query))

    def locate(self, identity: Identity) -> Placement | None:
        """The rows of a patient planted for ``identity`` but never recorded (found by NIR or e-mail)."""
        patients = self.tables["patients"]
        for condition in (patients.c.matricule == identity.nir, patients.c.email == identity.email):
            found = self._read_rows(sa.select(patients).where(condition).limit(2))
            if len(found) == 1:
                return Placement(rows=tuple(self._rows_of(found[0])))
        return None

    def _rows_of(self, patient: dict[str, Any]) -> list[dict[str, Any]]:
        """Placement rows of a planted patient, rebuilt in insertion order from the database."""
        t = self.tables
        out: list[dict[str, Any]] = []

        def add(table: str, row: dict[str, Any]) -> None:
            key = next(c.name for c in t[table].primary_key.columns)
            placed: dict[str, Any] = {"table": table, "key": {key: to_json(row[key])},
                                      "values": {k: to_json(v) for k, v in row.items() if k != key}}
            if table in UNCHECKED:
                placed["unchecked"] = sorted(UNCHECKED[table])
            out.append(placed)

        def with_log(table: str, row: dict[str, Any], object_class: str) -> None:
            add(table, row)
            log = t["user_log"]
            for entry in self._read_rows(sa.select(log).where(
                    log.c.object_class == object_class, log.c.type == "create",
                    log.c.object_id == row[next(iter(t[table].primary_key.columns)).name])):
                add("user_log", entry)

        with_log("patients", patient, "CPatient")
        idex = t["id_sante400"]
        for row in self._read_rows(sa.select(idex).where(idex.c.object_class == "CPatient",
                                                        idex.c.object_id == patient["patient_id"],
                                                        idex.c.tag == (self.host.ipp_tag or ""))):
            add("id_sante400", row)
        dossier, antecedent = t["dossier_medical"], t["antecedent"]
        for record in self._read_rows(sa.select(dossier).where(dossier.c.object_class == "CPatient",
                                                              dossier.c.object_id == patient["patient_id"])):
            with_log("dossier_medical", record, "CDossierMedical")
            for row in self._read_rows(sa.select(antecedent).where(
                    antecedent.c.dossier_medical_id == record["dossier_medical_id"])
                    .order_by(antecedent.c.antecedent_id)):
                with_log("antecedent", row, "CAntecedent")
        return out
