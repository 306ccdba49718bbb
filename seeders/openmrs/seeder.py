"""The OpenMRS seeder: canary patients written straight into an OpenMRS database.

What a patient is made of and how the rows are written is in
``seeders.openmrs.rows``; identifier numbering (idgen or by hand, with the
type's check digit) in ``seeders.openmrs.numbers``; the metadata options
resolve to in ``seeders.openmrs.setup``. This module drives them through the
application seeder lifecycle (``seeders.sql.appseeder``): structure check,
collisions, one-transaction plant, verify, locate and retire, all through
``SqlTarget``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa

from canary.errors import ConfigError
from canary.model import Identity, Placement
from seeders.sql.appseeder import AppSeeder
from seeders.base import SeederOption
from seeders.openmrs.locate import locate_patient
from seeders.openmrs.numbers import IdentifierNumbering, recent_log_comment
from seeders.openmrs.rows import TABLES, RowBuilder, sample_habits
from seeders.openmrs.setup import METADATA_TABLES, OpenMrsSetup, read_setup
from seeders.sql.identity_match import name_spellings, nir_writings
from seeders.sql.rows import RowPlan
from seeders.sql.apptarget import AppTarget
from seeders.sql.access import access_problems, needs


class OpenMrsSeeder(AppSeeder):
    name = "openmrs"
    summary = "OpenMRS (MariaDB/MySQL): person, name, address, phone attribute, patient and identifier rows."
    application = "OpenMRS"
    dialects = ("mysql", "mariadb")
    wrong_dialect = "this seeder writes OpenMRS on MariaDB/MySQL, not {}"
    preloaded = (*TABLES, *METADATA_TABLES)
    parts = ("setup", "numbering", "builder")
    setup: OpenMrsSetup | None
    numbering: IdentifierNumbering | None
    builder: RowBuilder | None
    options = (
        SeederOption("identifier_type", "Patient identifier type (name or id) numbering the canaries; "
                     "default 'OpenMRS ID', else 'OpenMRS Identification Number'", default=""),
        SeederOption("location", "Location (name or id) the identifier is issued at; default the location of "
                     "the newest identifiers of that type, else 'Unknown Location'", default=""),
        SeederOption("phone_attribute_type", "Person attribute type (name or id) holding the phone, or 'none'",
                     default="Telephone Number"),
        SeederOption("email_attribute_type", "Person attribute type (name or id) holding the e-mail, or 'none'",
                     default="none"),
        SeederOption("nir_identifier_type", "Patient identifier type (name or id) holding the NIR, or 'none'",
                     default="none"),
        SeederOption("creator", "users.user_id recorded as creator of every row, or 'auto' (who created most "
                     "of the newest patients)", default="auto"),
    )

    @classmethod
    def validate_options(cls, options: dict[str, str]) -> dict[str, Any]:
        checked = super().validate_options(options)
        creator = checked.get("creator")
        if creator is not None and not str(creator).strip().isdigit() and str(creator).strip().lower() != "auto":
            raise ConfigError(f"seeder 'openmrs': creator must be a users.user_id (a number) or 'auto', not {creator!r}")
        return checked

    # -- lifecycle -------------------------------------------------------
    def _prepare(self, target: AppTarget) -> tuple[OpenMrsSetup, IdentifierNumbering, RowBuilder]:
        self._check_structure(target)
        setup = read_setup(target, {opt.name: self.option(opt.name) for opt in self.options})
        numbering = IdentifierNumbering(target, setup.identifier_type, setup.idgen)
        numbering.load()
        comment = recent_log_comment(target, setup.idgen.id) if setup.idgen else None
        return setup, numbering, RowBuilder(target, setup, sample_habits(target, setup), comment)

    def check_access(self) -> list[str]:
        target, setup, _numbering, _builder = self._ready()
        wanted = needs(TABLES)
        if setup.idgen is not None:  # the next identifier is taken by updating idgen's counter
            wanted["idgen_seq_id_gen"] = ("SELECT", "UPDATE")
        return access_problems(target, wanted)

    def _check_structure(self, target: AppTarget) -> None:
        idgen = target.table("idgen_seq_id_gen") is not None
        for table, (key, always, optional) in TABLES.items():
            if table == "idgen_log_entry" and not idgen:
                continue
            reflected = target.table(table)
            columns = [key, *always, *(c for c in optional if reflected is not None and c in reflected.c)]
            problems = target.structure_problems(table, (key,), dict.fromkeys(columns, "any"),
                                                 unique_by_construction=(key,))
            if problems:
                raise self._structure_error(problems[0])

    def _ready(self) -> tuple[AppTarget, OpenMrsSetup, IdentifierNumbering, RowBuilder]:
        return self._target(), self.setup, self.numbering, self.builder

    # -- planting --------------------------------------------------------
    def _checked_rows(self, identity: Identity, identifier: str) -> list[RowPlan]:
        return self._checked(self._ready()[3].rows(identity, identifier, datetime.now()))

    def _plan_rows(self, identity: Identity) -> list[RowPlan]:
        return self._checked_rows(identity, self._ready()[2].preview())

    def check_fits(self, identities: Iterable[Identity]) -> None:
        preview = self._ready()[2].preview()  # once for the batch: nothing is taken before the plant
        for identity in identities:
            self._checked_rows(identity, preview)

    def plant(self, identity: Identity) -> Placement:
        target, _setup, numbering, _builder = self._ready()
        identifier = numbering.take()
        try:
            rows = self._checked_rows(identity, identifier)
            return Placement(rows=target.insert(rows))
        except BaseException:
            numbering.forget(identifier)
            raise

    # -- collisions and lookups ------------------------------------------
    def collides(self, identity: Identity) -> bool:
        target = self._ready()[0]
        person, name, ids = (target.table(t) for t in ("person", "person_name", "patient_identifier"))
        same_nir = sa.select(ids.c.patient_identifier_id).where(ids.c.identifier.in_(nir_writings(identity.nir)),
                                                                ids.c.voided == 0).limit(1)
        families = name_spellings(identity.last_name, identity.birth_name)
        same_person = (
            sa.select(person.c.person_id).join(name, name.c.person_id == person.c.person_id)
            .where(person.c.voided == 0, name.c.voided == 0, person.c.birthdate == identity.birth_date,
                   sa.func.lower(name.c.family_name).in_(families),
                   sa.func.lower(name.c.given_name).in_(name_spellings(identity.first_name)))
            .limit(1))
        with target.engine.connect() as conn:
            return any(conn.execute(query).first() is not None for query in (same_nir, same_person))

    def locate(self, identity: Identity) -> Placement | None:
        """Find the rows of a canary planted for ``identity`` but never recorded.

        Anchored on a contact point only a canary carries (its phone or
        e-mail attribute), then checked against the identity's birth date
        and names before any row is claimed. With both attribute types set
        to 'none' there is nothing to anchor on and nothing is found.
        """
        target, setup, _numbering, builder = self._ready()
        return locate_patient(target, setup, builder, identity)
