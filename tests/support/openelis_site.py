"""A current OpenELIS schema, and a laboratory that has lived in it.

``create_current_schema`` loads the shared pre-Liquibase dump (openelis-init.sql)
and the hand-written delta to the current Liquibase schema
(tests/fixtures/openelis/current-delta*.sql, each statement citing its
changelog), then records the release folders in ``databasechangelog`` as
Liquibase does.

``populate_lab`` writes, independently of the canary generator, a site as
the application leaves it: patients registered through the React form
(person, patient with fhir_uuid, '' contact person + patient_contact, GUID
identity, commune/village parts, audit rows), each with one to three
validated requests over the last 18 months (SITEYEARNUM accession numbers and
their counters, sample_item, analyses, numeric results in the configured
normal ranges, history ``I`` rows of the clerk and technician, the ``U`` rows
of the technician's result entry and the biologist's validation, in the
format read from AuditTrailServiceImpl), every timestamp in milliseconds.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from support.app_databases import OPENELIS_DUMP, load_pgdump, require_dump
from support.sql_seeder_helpers import make_identity

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openelis"
DELTA, DELTA_DATA = FIXTURES / "current-delta.sql", FIXTURES / "current-delta-data.sql"
CURRENT_RELEASES = ("2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "2.8", "3.1")
CLERK, TECHNICIAN, BIOLOGIST = 5, 6, 7
REF = {"person": 16, "patient": 15, "sample": 1, "sample_item": 23, "analysis": 4, "result": 21}
GUID_TYPE, COMMUNE, VILLAGE = 14, 2, 3
FINISHED, ITEM_ENTERED, FINALIZED = 3, 20, 6
# The site's panels: NFS (new tests), glycemie, bilan lipidique (ids of the stock catalogue).
PANELS = {"NFS": (177, 178, 179, 180, 181), "glycemie": (159,), "lipides": (7, 8, 9)}
SITE_OFFSET = 500000


def run_sql(url: str, path: Path) -> None:
    engine = sa.create_engine(url)
    try:
        raw = engine.raw_connection()
        try:
            raw.cursor().execute(path.read_text(encoding="utf-8"))
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()


def record_changelog(url: str, releases: tuple[str, ...]) -> None:
    """A databasechangelog naming one changeset per release folder, as the Liquibase run leaves it."""
    execute_all(url, ["""CREATE TABLE clinlims.databasechangelog (
        id varchar(255) NOT NULL, author varchar(255) NOT NULL, filename varchar(255) NOT NULL,
        dateexecuted timestamp NOT NULL, orderexecuted integer NOT NULL, exectype varchar(10) NOT NULL,
        md5sum varchar(35), description varchar(255), comments varchar(255), tag varchar(255),
        liquibase varchar(20), contexts varchar(255), labels varchar(255), deployment_id varchar(10))"""] + [
        f"INSERT INTO clinlims.databasechangelog (id, author, filename, dateexecuted, orderexecuted, exectype, "
        f"liquibase) VALUES ('1', 'csteele', 'liquibase/{release}.x.x/base.xml', now(), {n}, 'EXECUTED', '4.8.0')"
        for n, release in enumerate(releases, start=1)])


def execute_all(url: str, statements: list[str]) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def create_current_schema(url: str, releases: tuple[str, ...] = CURRENT_RELEASES) -> None:
    load_pgdump(url, require_dump(OPENELIS_DUMP))
    run_sql(url, DELTA)
    run_sql(url, DELTA_DATA)
    record_changelog(url, releases)


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class _Ids:
    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def __call__(self, table: str) -> int:
        self.next[table] = self.next.get(table, 100) + 1  # above the stock rows
        return self.next[table]


def populate_lab(url: str, patients: int = 150, *, now: datetime | None = None, seed: int = 7) -> None:
    now = now or datetime.now()
    rnd = random.Random(seed)
    ids = _Ids()
    rows: dict[str, list[dict]] = {}
    index: dict[tuple[str, int], dict] = {}
    counters: dict[str, int] = {}

    def add(table: str, **values) -> int:
        if "id" not in values:
            values["id"] = ids(table)
        rows.setdefault(table, []).append(values)
        index[(table, values["id"])] = values
        return values["id"]

    def audit(table: str, ref: int, when: datetime, user: int, activity: str = "I", changes: bytes | None = None):
        add("history", sys_user_id=user, reference_id=ref, reference_table=REF[table], timestamp=when,
            activity=activity, changes=changes)

    start = now - timedelta(days=540)
    for n in range(1, patients + 1):
        ident = make_identity(SITE_OFFSET + n)
        day = start + timedelta(days=(540 - 2) * n / patients)
        clock = _ms(day.replace(hour=rnd.randint(7, 16), minute=rnd.randint(0, 59), second=rnd.randint(0, 59),
                                microsecond=rnd.randrange(10**6)))

        def tick() -> datetime:
            nonlocal clock
            clock += timedelta(milliseconds=rnd.randint(1, 9))
            return clock

        person = add("person", last_name=ident.last_name.upper(), first_name=ident.first_name, street_address="",
                     city=ident.address.city, primary_phone=f"06{rnd.randrange(10**8):08d}", lastupdated=tick())
        audit("person", person, clock, CLERK)
        fhir = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        patient = add("patient", person_id=person, gender=ident.sex.value,
                      birth_date=datetime.combine(ident.birth_date, datetime.min.time()),
                      entered_birth_date=ident.birth_date.strftime("%d/%m/%Y"), national_id=ident.nir,
                      fhir_uuid=fhir, lastupdated=tick())
        audit("patient", patient, clock, CLERK)
        contact = add("person", first_name="", last_name="", primary_phone="", email="", lastupdated=tick())
        audit("person", contact, clock, CLERK)
        add("patient_contact", patient_id=patient, person_id=contact, lastupdated=tick().date())
        add("patient_identity", identity_type_id=GUID_TYPE, patient_id=patient, identity_data=fhir, lastupdated=tick())
        add("person_address", id=None, person_id=person, address_part_id=COMMUNE, type="T", value="")
        add("person_address", id=None, person_id=person, address_part_id=VILLAGE, type="T", value=ident.address.city)
        order = clock + timedelta(minutes=rnd.uniform(3, 25))
        for visit in range(rnd.choice((1, 1, 2, 3))):
            if order > now - timedelta(days=1):
                break
            _request(add, audit, index, rnd, counters, patient, order)
            order += timedelta(days=rnd.uniform(20, 200))
    for row in rows["person_address"]:
        del row["id"]
    _write(url, rows, counters)


def _request(add, audit, index: dict, rnd: random.Random, counters: dict[str, int], patient: int,  # noqa: ANN001
             order: datetime) -> None:
    clock = _ms(order)

    def at(moment: datetime) -> datetime:
        nonlocal clock
        clock = _ms(max(moment, clock + timedelta(milliseconds=rnd.randint(1, 9))))
        return clock

    head = f"12345{order.year % 100:02d}"
    counters[head] = counters.get(head, 0) + 1
    received = (order - timedelta(minutes=rnd.uniform(2, 12))).replace(second=0, microsecond=0)
    resulted = order + timedelta(hours=rnd.uniform(1.5, 5))
    validated = resulted + timedelta(hours=rnd.uniform(0.5, 3))
    sample = add("sample", accession_number=f"{head}{counters[head]:013d}", domain="H", revision=0,
                 entered_date=datetime.combine(order.date(), datetime.min.time()), received_date=received,
                 collection_date=received, status_id=FINISHED, sys_user_id=CLERK, is_confirmation=False,
                 order_priority="ROUTINE", fhir_uuid=str(uuid.uuid4()), lastupdated=None)
    audit("sample", sample, at(order), CLERK)
    item = add("sample_item", sort_order=1, samp_id=sample, typeosamp_id=2, status_id=ITEM_ENTERED,
               collection_date=received, collector="", lastupdated=at(order), fhir_uuid=str(uuid.uuid4()),
               rejected=False)
    audit("sample_item", item, clock, CLERK)
    panels = rnd.sample(sorted(PANELS), rnd.choice((1, 2)))
    analyses = []
    for test in [t for p in panels for t in PANELS[p]]:
        analysis = add("analysis", sampitem_id=item, test_sect_id=36 if test > 170 else 56, test_id=test, revision=0,
                       status_id=FINALIZED, started_date=received,
                       completed_date=datetime.combine(resulted.date(), datetime.min.time()),
                       released_date=datetime.combine(validated.date(), datetime.min.time()), is_reportable="N",
                       analysis_type="MANUAL", reflex_trigger=False, referred_out=False, corrected=False,
                       type_of_sample_name="Serum", fhir_uuid=str(uuid.uuid4()), lastupdated=None)
        audit("analysis", analysis, at(order), CLERK)
        analyses.append((analysis, test))
    add("sample_human", samp_id=sample, patient_id=patient, provider_id=None, lastupdated=at(order))
    results = []
    for analysis, test in analyses:
        low, high, digits = _RANGES[test]
        result = add("result", analysis_id=analysis, is_reportable="N", result_type="N",
                     value=f"{rnd.uniform(low, high):.{digits}f}", test_result_id=_NUMERIC[test], min_normal=None,
                     max_normal=None, significant_digits=digits, grouping=0, fhir_uuid=str(uuid.uuid4()),
                     lastupdated=None)
        audit("result", result, at(resulted), TECHNICIAN)
        results.append(result)
    # Result entry re-saves the analyses (Not Tested -> Technical Acceptance) and the sample (-> Testing Started).
    for analysis, _test in analyses:
        audit("analysis", analysis, at(resulted), TECHNICIAN, "U", b"\n\n<statusId>4</statusId>\n")
    audit("sample", sample, at(resulted), TECHNICIAN, "U", b"<statusId>1</statusId>\n")
    # The biologist's validation: analyses Finalized, results re-saved, the sample Testing finished.
    for table, row_ids in (("analysis", [a for a, _ in analyses]), ("result", results), ("sample", [sample])):
        for row_id in row_ids:
            stamp = at(validated)
            index[(table, row_id)]["lastupdated"] = stamp
            if table != "result":
                before = b"\n\n<statusId>15</statusId>\n" if table == "analysis" else b"<statusId>2</statusId>\n"
                audit(table, row_id, stamp, BIOLOGIST, "U", before)


_RANGES = {177: (4.0, 10.0, 1), 178: (150, 400, 0), 179: (40, 70, 0), 180: (20, 40, 0), 181: (2, 9, 0),
           159: (0.7, 1.1, 2), 7: (1.5, 2.4, 2), 8: (0.4, 0.7, 2), 9: (0.5, 1.5, 2)}
# Their numeric test_result rows in the stock catalogue.
_NUMERIC = {177: 531, 178: 558, 179: 548, 180: 532, 181: 549, 159: 562, 7: 7, 8: 8, 9: 9}


def _write(url: str, rows: dict[str, list[dict]], counters: dict[str, int]) -> None:
    engine = sa.create_engine(url)
    md = sa.MetaData(schema="clinlims")
    md.reflect(engine, only=[*rows, "system_user", "accession_number_info"])
    t = {name.split(".")[-1]: table for name, table in md.tables.items()}
    try:
        with engine.begin() as conn:
            conn.execute(t["system_user"].insert(), [
                dict(id=CLERK, login_name="accueil", last_name="Accueil", first_name="Agent", is_active="Y",
                     is_employee="Y"),
                dict(id=TECHNICIAN, login_name="tech", last_name="Technicien", first_name="Labo", is_active="Y",
                     is_employee="Y"),
                dict(id=BIOLOGIST, login_name="bio", last_name="Biologiste", first_name="Chef", is_active="Y",
                     is_employee="Y")])
            for name in ("person", "patient", "patient_contact", "patient_identity", "person_address", "sample",
                         "sample_item", "analysis", "sample_human", "result", "history"):
                columns = {column for row in rows[name] for column in row}  # one statement: every row every column
                conn.execute(t[name].insert(), [{c: row.get(c) for c in columns} for row in rows[name]])
            conn.execute(t["accession_number_info"].insert(), [
                dict(prefix=head, type="SITEYEARNUM", cur_val=value) for head, value in counters.items()])
            for name in ("person", "patient", "patient_contact", "patient_identity", "sample", "sample_item",
                         "analysis", "sample_human", "result", "history"):
                conn.execute(sa.text(f"SELECT setval('clinlims.{name}_seq', "
                                     f"(SELECT max(id) FROM clinlims.{name})::bigint)"))
    finally:
        engine.dispose()


def table_checksums(url: str) -> dict[str, str]:
    """md5 of every clinlims table's rows (sorted text forms): equal before planting and after retiring."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = conn.execute(sa.text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'clinlims' "
                "AND table_type = 'BASE TABLE' ORDER BY 1")).scalars().all()
            return {name: conn.execute(sa.text(
                f'SELECT md5(coalesce(string_agg(t::text, \'|\' ORDER BY t::text), \'\')) FROM clinlims."{name}" t'
            )).scalar_one() for name in names}
    finally:
        engine.dispose()
