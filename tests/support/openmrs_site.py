"""An OpenMRS site with clinical activity, on the real 2.6 dump: patients seen at triage, with vitals.

Written for the footprint tests, independently of the seeder: the rows a
site running the O3 vitals form has (CIEL vitals concepts by their CIEL
uuids, a "Facility Visit" visit type, a "Vitals" encounter type, a nurse
provider), and ``count`` patients of whom ``seen`` have a visit with a
vitals encounter recording six of the eight vital signs (no SpO2, no
respiratory rate at this site).
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa

from seeders.openmrs.footprint import ciel_uuid
from support.openmrs_support import REAL_OFFSET, real_identifier
from support.sql_seeder_helpers import make_identity

RECORDED = (5085, 5086, 5087, 5088, 5089, 5090)
VISIT_TYPE, VITALS_TYPE, NURSE, FORM = 1, 1, 1, None


def build_site(url: str, count: int = 40, seen: int = 30) -> dict[int, int]:
    """Load the site's metadata and patients; the CIEL code -> concept_id of each vitals concept."""
    engine = sa.create_engine(url)
    rnd = random.Random(12)
    concepts = {code: 100 + n for n, code in enumerate((5085, 5086, 5087, 5088, 5089, 5090, 5092, 5242))}
    then = "2021-03-01 09:00:00"
    with engine.begin() as conn:
        def run(sql: str, **params) -> None:
            conn.execute(sa.text(sql), params)

        run("INSERT INTO person_attribute_type (name, description, format, searchable, creator, date_created, "
            "retired, sort_weight, uuid) VALUES ('Telephone Number', 'The telephone number for the person', "
            "'java.lang.String', 0, 1, :t, 0, 7, '14d4f066-15f5-102d-96e4-000c29c2a5d7')", t=then)
        for code, concept_id in concepts.items():
            run("INSERT INTO concept (concept_id, retired, datatype_id, class_id, is_set, creator, date_created, "
                "uuid) VALUES (:id, 0, 1, 1, 0, 1, :t, :u)", id=concept_id, t=then, u=ciel_uuid(code))
        run("INSERT INTO visit_type (visit_type_id, name, creator, date_created, retired, uuid) VALUES "
            "(:id, 'Facility Visit', 1, :t, 0, '7b0f5697-27e3-40c4-8bae-f4049abfb4ed')", id=VISIT_TYPE, t=then)
        run("INSERT INTO encounter_type (encounter_type_id, name, creator, date_created, retired, uuid) VALUES "
            "(:id, 'Vitals', 1, :t, 0, '67a71486-1a54-468f-ac3e-7091a9a79584')", id=VITALS_TYPE, t=then)
        run("INSERT INTO provider (provider_id, person_id, identifier, creator, date_created, retired, uuid) "
            "VALUES (:id, 1, 'NURSE-1', 1, :t, 0, :u)", id=NURSE, t=then, u=str(uuid.uuid4()))
        for n in range(1, count + 1):
            ident = make_identity(REAL_OFFSET + n)
            created = datetime(2024, 1, 2, 8) + timedelta(hours=7 * n, seconds=rnd.randrange(3000))
            audit = {"creator": 1, "created": created}
            person = conn.execute(sa.text(
                "INSERT INTO person (gender, birthdate, birthdate_estimated, dead, creator, date_created, voided, "
                "uuid, deathdate_estimated) VALUES (:g, :b, 0, 0, :creator, :created, 0, :u, 0)"),
                dict(g=ident.sex.value, b=ident.birth_date, u=str(uuid.uuid4()), **audit)).lastrowid
            run("INSERT INTO patient (patient_id, creator, date_created, voided, allergy_status) VALUES "
                "(:p, :creator, :created, 0, 'Unknown')", p=person, **audit)
            run("INSERT INTO person_name (person_id, preferred, given_name, family_name, creator, date_created, "
                "voided, uuid) VALUES (:p, 1, :g, :f, :creator, :created, 0, :u)", p=person,
                g=ident.first_name, f=ident.last_name.upper(), u=str(uuid.uuid4()), **audit)
            run("INSERT INTO patient_identifier (patient_id, identifier, identifier_type, preferred, location_id, "
                "creator, date_created, voided, uuid) VALUES (:p, :i, 1, 1, 1, :creator, :created, 0, :u)",
                p=person, i=real_identifier(n), u=str(uuid.uuid4()), **audit)
            if n > seen:
                continue
            started = created + timedelta(minutes=rnd.randrange(5, 40))
            visit = conn.execute(sa.text(
                "INSERT INTO visit (patient_id, visit_type_id, date_started, location_id, creator, date_created, "
                "voided, uuid) VALUES (:p, :vt, :s, 1, :creator, :s, 0, :u)"),
                dict(p=person, vt=VISIT_TYPE, s=started, u=str(uuid.uuid4()), creator=1)).lastrowid
            encounter = conn.execute(sa.text(
                "INSERT INTO encounter (encounter_type, patient_id, location_id, encounter_datetime, creator, "
                "date_created, voided, visit_id, uuid) VALUES (:et, :p, 1, :s, 1, :s, 0, :v, :u)"),
                dict(et=VITALS_TYPE, p=person, s=started, v=visit, u=str(uuid.uuid4()))).lastrowid
            run("INSERT INTO encounter_provider (encounter_id, provider_id, encounter_role_id, creator, date_created, "
                "voided, uuid) VALUES (:e, :pr, 1, 1, :s, 0, :u)", e=encounter, pr=NURSE, s=started,
                u=str(uuid.uuid4()))
            for code in RECORDED:
                run("INSERT INTO obs (person_id, concept_id, encounter_id, obs_datetime, location_id, value_numeric, "
                    "creator, date_created, voided, uuid, status) VALUES (:p, :c, :e, :s, 1, :v, 1, :s, 0, :u, "
                    "'FINAL')", p=person, c=concepts[code], e=encounter, s=started, v=rnd.randrange(40, 180),
                    u=str(uuid.uuid4()))
    engine.dispose()
    return concepts
