"""Which Mediboard this is: the dPpatients version in ``modules`` and what its schema holds.

``CSetup`` writes each module's latest applied revision into
``modules.mod_version`` (``core/classes/Module/CModule.php``); the
dPpatients revisions (``modules/dPpatients/setup.php``, later
``classes/CSetupPatients.php``) that change what a new patient leaves behind:

- 3.01 ``patient_signature``; 3.35 ``patients.creator_id``/``creation_date``;
- 4.33 ``prenoms``/``prenom_usuel`` replace ``prenom_2``..``prenom_4``;
- 4.35 ``source_identite``, 4.39 ``patients.source_identite_id``;
- 4.44 ``nom_jeune_fille`` NOT NULL.

The seeder supports the ranges in ``SUPPORTED`` and refuses any other version
in one line, before reading or writing anything else; the columns a range
needs must be there too (a version number the schema contradicts is refused).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from canary.errors import SourceError
from seeders.sql.target import SqlTarget

Version = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Band:
    """A range of dPpatients versions the seeder writes the same way."""

    low: Version  # inclusive
    high: Version  # inclusive
    label: str
    needs: dict[str, tuple[str, ...]]  # table -> columns this band must have


_LEGACY = {"patients": ("prenom_2", "prenom_3", "prenom_4")}
SUPPORTED = (
    Band((2, 37), (3, 0), "2.37-3.00 (Mediboard 2015 line)", _LEGACY),
    Band((3, 1), (3, 34), "3.01-3.34", {**_LEGACY, "patient_signature": ("patient_id", "signature")}),
    Band((3, 35), (4, 32), "3.35-4.32", {"patients": ("prenom_2", "creator_id", "creation_date"),
                                         "patient_signature": ("patient_id", "signature")}),
    Band((4, 33), (4, 38), "4.33-4.38", {"patients": ("prenoms", "prenom_usuel", "creator_id", "creation_date"),
                                         "patient_signature": ("patient_id", "signature")}),
    Band((4, 39), (4, 99), "4.39-4.99 (OX 4.x)", {
        "patients": ("prenoms", "prenom_usuel", "creator_id", "creation_date", "source_identite_id", "status"),
        "patient_signature": ("patient_id", "signature"),
        "source_identite": ("source_identite_id", "patient_id", "active", "mode_obtention", "nom_naissance",
                            "prenom_naissance", "prenoms", "date_naissance", "sexe", "debut")}),
)


@dataclass(frozen=True, slots=True)
class Schema:
    """The dPpatients version of a site and what follows from it."""

    version: Version
    band: Band

    @property
    def text(self) -> str:
        return ".".join(f"{part:02d}" if n else str(part) for n, part in enumerate(self.version))

    @property
    def signatures(self) -> bool:  # 3.01: CPatientSignature::addPatientSignature
        return self.version >= (3, 1)

    @property
    def creator(self) -> bool:  # 3.35: CPatient::store sets creator_id, creation_date
        return self.version >= (3, 35)

    @property
    def prenoms(self) -> bool:  # 4.33: prenoms, prenom_usuel; prenom_2..4 dropped
        return self.version >= (4, 33)

    @property
    def sources(self) -> bool:  # 4.35/4.39: source_identite and patients.source_identite_id
        return self.version >= (4, 39)

    @property
    def idex_logged(self) -> bool:  # CIdSante400 loggable = LOGGABLE_HUMAN in the 2021 code (4.48); 2015: false
        return self.version >= (4, 48)


def parse(text: str) -> Version | None:
    try:
        return tuple(int(part) for part in str(text).strip().split("."))
    except ValueError:
        return None


def detect(target: SqlTarget, source_name: str) -> Schema:
    """The site's dPpatients version, checked against the schema; SourceError when not supported."""
    modules = target.table("modules")
    if modules is None or not {"mod_name", "mod_version"} <= set(modules.c.keys()):
        raise SourceError(f"source '{source_name}': no table modules (mod_name, mod_version): "
                          "is this a Mediboard database?")
    with target.engine.connect() as conn:
        found = conn.execute(sa.select(modules.c.mod_version).where(modules.c.mod_name == "dPpatients")).scalar()
    if found is None:
        raise SourceError(f"source '{source_name}': modules has no dPpatients row: is this a Mediboard database?")
    version = parse(found)
    band = next((b for b in SUPPORTED if version is not None and b.low <= version[:2] <= b.high), None)
    if version is None or band is None:
        ranges = ", ".join(b.label for b in SUPPORTED)
        raise SourceError(f"source '{source_name}': dPpatients version {found} is not supported "
                          f"(supported: {ranges}; see docs/seeders/mediboard.md)")
    for table_name, columns in band.needs.items():
        table = target.table(table_name)
        if table is None:
            raise SourceError(f"source '{source_name}': dPpatients {found} should have table {table_name}, "
                              "the database has none: an upgrade left half done?")
        missing = [c for c in columns if c not in table.c]
        if missing:
            raise SourceError(f"source '{source_name}': dPpatients {found} should have {table_name}."
                              f"{', '.join(missing)}, the database has not: an upgrade left half done?")
    return Schema(version=version, band=band)
