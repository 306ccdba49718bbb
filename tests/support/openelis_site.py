"""A current OpenELIS schema, and a laboratory that has lived in it.

``create_current_schema`` loads the shared pre-Liquibase dump (openelis-init.sql)
and the hand-written delta to the current Liquibase schema
(tests/fixtures/openelis/current-delta*.sql, each statement citing its
changelog), then records the release folders in ``databasechangelog`` as
Liquibase does.

``populate_lab`` writes, independently of the canary generator (its own
names, ages, communes and NIRs), a site as the application leaves it:
patients registered through the React form (person, patient with fhir_uuid,
'' contact person + patient_contact, GUID identity, commune/village parts,
audit rows), each with a validated request on its registration day and, for
those who come back (``RETURNS``: most never do, some now and then, a few
every few months), later ones until ``now`` (SITEYEARNUM accession numbers
and their counters, sample_item, analyses, numeric results in the configured
normal ranges, history ``I`` rows of the clerk and technician, the ``U`` rows
of the technician's result entry and the biologist's validation, in the
format read from AuditTrailServiceImpl), every timestamp in milliseconds.

``make_lab`` returns the saves in time order and ``SiteWriter`` writes them,
in one go or up to a moment at a time: ids come from the application's
sequences and accession numbers from its counter at the moment of writing,
so canaries planted in between (a drip replayed over the site's life) get
the ids and numbers of their moment.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from support.app_databases import OPENELIS_DUMP, load_pgdump, require_dump
from support.lis_site import CATCHMENT, MEN, STREETS, SURNAMES, WOMEN

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openelis"
DELTA, DELTA_DATA = FIXTURES / "current-delta.sql", FIXTURES / "current-delta-data.sql"
CURRENT_RELEASES = ("2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7", "2.8", "3.1")
CLERK, TECHNICIAN, BIOLOGIST = 5, 6, 7
REF = {"person": 16, "patient": 15, "sample": 1, "sample_item": 23, "analysis": 4, "result": 21}
GUID_TYPE, COMMUNE, VILLAGE = 14, 2, 3
FINISHED, ITEM_ENTERED, FINALIZED = 3, 20, 6
# The site's panels: NFS (new tests), glycemie, bilan lipidique (ids of the stock catalogue).
PANELS = {"NFS": (177, 178, 179, 180, 181), "glycemie": (159,), "lipides": (7, 8, 9)}


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
    """Provisional ids, one series per table; ``SiteWriter`` gives each row its real id from the sequences."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def __call__(self, table: str) -> int:
        self.next[table] = self.next.get(table, 0) + 1
        return self.next[table]


@dataclass
class Save:
    """One save of the application: a registration or a request, its rows with provisional ids."""

    moment: datetime
    rows: dict[str, list[dict]] = field(default_factory=dict)


# How often the lab's patients come back (its own habits, not the canary generator's): most come once,
# some now and then, a few every few months (chronic follow-up). (share, mean days between requests)
RETURNS = ((0.55, None), (0.30, 300.0), (0.15, 90.0))
# Ages of a laboratory's patients (years, weight): more elderly than the general population.
AGES = ((0, 18, 8), (18, 40, 24), (40, 60, 27), (60, 80, 29), (80, 98, 12))


def populate_lab(url: str, patients: int = 150, *, now: datetime | None = None, seed: int = 7,
                 days: int = 540) -> None:
    """The whole site at once (every save up to ``now``)."""
    saves = make_lab(patients, now=now or datetime.now(), seed=seed, days=days)
    writer = SiteWriter(url)
    try:
        writer.write(saves)
    finally:
        writer.close()


def make_lab(patients: int, *, now: datetime, seed: int = 7, days: int = 540) -> list[Save]:
    """The saves of ``patients`` registered over ``days`` before ``now`` and their requests, in time order.

    Its own population generator (names, ages, communes of a Rennes catchment, NIRs), apart from
    canary/identity: the audit must compare canaries with patients not made by the canary generator.
    """
    rnd = random.Random(seed)
    ids = _Ids()
    saves: list[Save] = []
    start = now - timedelta(days=days)
    for n in range(1, patients + 1):
        day = start + timedelta(days=(days - 2) * n / patients)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        clock = _ms(day.replace(hour=rnd.randint(7, 16), minute=rnd.randint(0, 59), second=rnd.randint(0, 59),
                                microsecond=rnd.randrange(10**6)))
        if clock > now - timedelta(hours=1):
            break
        save = Save(clock)
        patient = _registration(save, ids, rnd, clock)
        saves.append(save)
        every = _weighted(rnd, RETURNS)[1]
        order = clock + timedelta(minutes=rnd.uniform(3, 25))
        while order < now - timedelta(hours=8):
            request = Save(order)
            _request(request, ids, rnd, patient, order)
            saves.append(request)
            if every is None:
                break
            order = _working_day(order + timedelta(days=7 + rnd.expovariate(1 / every)), rnd)
    saves.sort(key=lambda s: s.moment)
    return saves


def _weighted(rnd: random.Random, pairs):
    roll = rnd.random() * sum(pair[0] for pair in pairs)
    for pair in pairs:
        roll -= pair[0]
        if roll <= 0:
            return pair
    return pairs[-1]


def _working_day(moment: datetime, rnd: random.Random) -> datetime:
    while moment.weekday() >= 5:
        moment += timedelta(days=1)
    return _ms(moment.replace(hour=rnd.randint(7, 16), minute=rnd.randint(0, 59), second=rnd.randint(0, 59),
                              microsecond=rnd.randrange(10**6)))


def _person_of(rnd: random.Random, registered: datetime) -> dict:
    """Name, sex, birth date, NIR, commune: the lab's own population."""
    female = rnd.random() < 0.54
    low, high, _ = _weighted(rnd, [(w, (lo, hi, w)) for lo, hi, w in AGES])[1]
    birth = (registered - timedelta(days=rnd.uniform(low, high) * 365.25)).date()
    postcode, city, _ = _weighted(rnd, [(w, (p, c, w)) for p, c, w in CATCHMENT])[1]
    nir = f"{2 if female else 1}{birth:%y%m}35{rnd.randrange(1, 400):03d}{rnd.randrange(1, 999):03d}"
    nir += f"{97 - int(nir) % 97:02d}"
    return dict(sex="F" if female else "M", first=rnd.choice(WOMEN if female else MEN), last=rnd.choice(SURNAMES),
                birth=birth, nir=nir, city=city, street=f"{rnd.randint(1, 120)} {rnd.choice(STREETS)}")


def _registration(save: Save, ids: _Ids, rnd: random.Random, clock: datetime) -> int:
    """The React form's save of a new patient (PatientServiceImpl.persistPatientData)."""
    moment = clock

    def tick() -> datetime:
        nonlocal moment
        moment += timedelta(milliseconds=rnd.randint(1, 9))
        return moment

    def add(table: str, **values) -> int:
        if "id" not in values:
            values["id"] = ids(table)
        save.rows.setdefault(table, []).append(values)
        return values["id"]

    who = _person_of(rnd, clock)
    # The desk types the street for most patients, leaves the form's '' for the others.
    person = add("person", last_name=who["last"], first_name=who["first"],
                 street_address=who["street"] if rnd.random() < 0.6 else "",
                 city=who["city"], primary_phone=f"0{rnd.choice('67')}{rnd.randrange(10**8):08d}",
                 lastupdated=tick())
    _audit(add, "person", person, moment, CLERK)
    fhir = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
    patient = add("patient", person_id=person, gender=who["sex"],
                  birth_date=datetime.combine(who["birth"], datetime.min.time()),
                  entered_birth_date=who["birth"].strftime("%d/%m/%Y"), national_id=who["nir"],
                  fhir_uuid=fhir, lastupdated=tick())
    _audit(add, "patient", patient, moment, CLERK)
    contact = add("person", first_name="", last_name="", primary_phone="", email="", lastupdated=tick())
    _audit(add, "person", contact, moment, CLERK)
    add("patient_contact", patient_id=patient, person_id=contact, lastupdated=tick().date())
    add("patient_identity", identity_type_id=GUID_TYPE, patient_id=patient, identity_data=fhir, lastupdated=tick())
    add("person_address", id=None, person_id=person, address_part_id=COMMUNE, type="T", value="")
    add("person_address", id=None, person_id=person, address_part_id=VILLAGE, type="T", value=who["city"])
    return patient


def _audit(add, table: str, ref: int, when: datetime, user: int, activity: str = "I",  # noqa: ANN001
           changes: bytes | None = None) -> None:
    add("history", sys_user_id=user, reference_id=ref, reference_table=REF[table], timestamp=when,
        activity=activity, changes=changes)


def _request(save: Save, ids: _Ids, rnd: random.Random, patient: int, order: datetime) -> None:
    """Order entry, result entry and validation of one request (their rows in their final state)."""
    clock = _ms(order)
    index: dict[tuple[str, int], dict] = {}

    def add(table: str, **values) -> int:
        if "id" not in values:
            values["id"] = ids(table)
        save.rows.setdefault(table, []).append(values)
        index[(table, values["id"])] = values
        return values["id"]

    def audit(table: str, ref: int, when: datetime, user: int, activity: str = "I", changes: bytes | None = None):
        _audit(add, table, ref, when, user, activity, changes)

    def at(moment: datetime) -> datetime:
        nonlocal clock
        clock = _ms(max(moment, clock + timedelta(milliseconds=rnd.randint(1, 9))))
        return clock

    received = (order - timedelta(minutes=rnd.uniform(2, 12))).replace(second=0, microsecond=0)
    resulted = order + timedelta(hours=rnd.uniform(1.5, 5))
    validated = resulted + timedelta(hours=rnd.uniform(0.5, 3))
    # accession_number: given by SiteWriter in time order (the SITEYEARNUM counter of the order's year)
    sample = add("sample", accession_number=None, domain="H", revision=0,
                 entered_date=datetime.combine(order.date(), datetime.min.time()), received_date=received,
                 collection_date=received, status_id=FINISHED, sys_user_id=CLERK, is_confirmation=False,
                 order_priority="ROUTINE", fhir_uuid=str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                 lastupdated=None)
    audit("sample", sample, at(order), CLERK)
    item = add("sample_item", sort_order=1, samp_id=sample, typeosamp_id=2, status_id=ITEM_ENTERED,
               collection_date=received, collector="", lastupdated=at(order),
               fhir_uuid=str(uuid.UUID(int=rnd.getrandbits(128), version=4)), rejected=False)
    audit("sample_item", item, clock, CLERK)
    panels = rnd.sample(sorted(PANELS), rnd.choice((1, 2)))
    analyses = []
    for test in [t for p in panels for t in PANELS[p]]:
        analysis = add("analysis", sampitem_id=item, test_sect_id=36 if test > 170 else 56, test_id=test, revision=0,
                       status_id=FINALIZED, started_date=received,
                       completed_date=datetime.combine(resulted.date(), datetime.min.time()),
                       released_date=datetime.combine(validated.date(), datetime.min.time()), is_reportable="N",
                       analysis_type="MANUAL", reflex_trigger=False, referred_out=False, corrected=False,
                       type_of_sample_name="Serum", fhir_uuid=str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                       lastupdated=None)
        audit("analysis", analysis, at(order), CLERK)
        analyses.append((analysis, test))
    add("sample_human", samp_id=sample, patient_id=patient, provider_id=None, lastupdated=at(order))
    results = []
    for analysis, test in analyses:
        low, high, digits = _RANGES[test]
        result = add("result", analysis_id=analysis, is_reportable="N", result_type="N",
                     value=f"{rnd.uniform(low, high):.{digits}f}", test_result_id=_NUMERIC[test], min_normal=None,
                     max_normal=None, significant_digits=digits, grouping=0,
                     fhir_uuid=str(uuid.UUID(int=rnd.getrandbits(128), version=4)), lastupdated=None)
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


# Tables in insert order, and the columns holding another table's provisional id.
TABLES = ("person", "patient", "patient_contact", "patient_identity", "person_address", "sample", "sample_item",
          "analysis", "sample_human", "result", "history")
LINKS = {"patient": {"person_id": "person"}, "patient_contact": {"patient_id": "patient", "person_id": "person"},
         "patient_identity": {"patient_id": "patient"}, "person_address": {"person_id": "person"},
         "sample_item": {"samp_id": "sample"}, "analysis": {"sampitem_id": "sample_item"},
         "sample_human": {"samp_id": "sample", "patient_id": "patient"}, "result": {"analysis_id": "analysis"}}
HISTORY_OF = {number: table for table, number in REF.items()}
SITE_PREFIX = "12345"


class SiteWriter:
    """Writes saves as the application would have: ids from its sequences, accession numbers from its counter.

    Saves can be written in several steps (``write`` up to a moment, then the rest later), so rows written
    by someone else in between (a canary planted by the seeder) take the ids and numbers of their moment,
    as on a site where both happen in turn.
    """

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        md = sa.MetaData(schema="clinlims")
        md.reflect(self.engine, only=[*TABLES, "system_user", "accession_number_info"])
        self.t = {name.split(".")[-1]: table for name, table in md.tables.items()}
        self.real: dict[tuple[str, int], int] = {}
        self.counters: dict[str, int] = {}
        with self.engine.begin() as conn:
            if conn.execute(sa.text("SELECT count(*) FROM clinlims.system_user WHERE id = :id"),
                            {"id": CLERK}).scalar() == 0:
                conn.execute(self.t["system_user"].insert(), [
                    dict(id=CLERK, login_name="accueil", last_name="Accueil", first_name="Agent", is_active="Y",
                         is_employee="Y"),
                    dict(id=TECHNICIAN, login_name="tech", last_name="Technicien", first_name="Labo",
                         is_active="Y", is_employee="Y"),
                    dict(id=BIOLOGIST, login_name="bio", last_name="Biologiste", first_name="Chef", is_active="Y",
                         is_employee="Y")])

    def close(self) -> None:
        self.engine.dispose()

    def write(self, saves: list[Save]) -> None:
        if not saves:
            return
        self._read: set[str] = set()  # heads whose highest number in use was read in this write
        with self.engine.begin() as conn:
            last = {name: int(conn.execute(sa.text(
                f"SELECT greatest((SELECT last_value FROM clinlims.{name}_seq), "
                f"(SELECT coalesce(max(id), 0) FROM clinlims.{name}))")).scalar())
                for name in TABLES if name != "person_address"}
            rows: dict[str, list[dict]] = {name: [] for name in TABLES}
            for save in saves:
                for name in TABLES:
                    for row in save.rows.get(name, ()):
                        row = dict(row)
                        if name != "person_address":
                            last[name] += 1
                            self.real[(name, row["id"])] = last[name]
                            row["id"] = last[name]
                        else:
                            del row["id"]
                        for column, other in LINKS.get(name, {}).items():
                            row[column] = self.real[(other, row[column])]
                        if name == "history":
                            row["reference_id"] = self.real[(HISTORY_OF[row["reference_table"]], row["reference_id"])]
                        if name == "sample":
                            row["accession_number"] = self._accession(conn, row["entered_date"])
                        rows[name].append(row)
            for name in TABLES:
                if rows[name]:
                    columns = {column for row in rows[name] for column in row}  # one statement: every column
                    conn.execute(self.t[name].insert(), [{c: row.get(c) for c in columns} for row in rows[name]])
                if name != "person_address":
                    conn.execute(sa.text(f"SELECT setval('clinlims.{name}_seq', {last[name]})"))
            info = self.t["accession_number_info"]
            for head, value in self.counters.items():
                done = conn.execute(info.update().where(info.c.prefix == head, info.c.type == "SITEYEARNUM")
                                    .values(cur_val=value))
                if not done.rowcount:
                    conn.execute(info.insert(), [dict(prefix=head, type="SITEYEARNUM", cur_val=value)])

    def _accession(self, conn: sa.Connection, entered: datetime) -> str:
        """The next SITEYEARNUM number of the order's year, past any number in use."""
        head = f"{SITE_PREFIX}{entered.year % 100:02d}"
        if head in self._read:
            self.counters[head] += 1
            return f"{head}{self.counters[head]:013d}"
        self._read.add(head)
        self.counters.setdefault(head, 0)
        used = conn.execute(sa.text(
            "SELECT max(accession_number) FROM clinlims.sample WHERE accession_number LIKE :head "
            "AND length(accession_number) = :width"), {"head": head + "%", "width": len(head) + 13}).scalar()
        if used:
            self.counters[head] = max(self.counters[head], int(used[len(head):]))
        self.counters[head] += 1
        return f"{head}{self.counters[head]:013d}"


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
