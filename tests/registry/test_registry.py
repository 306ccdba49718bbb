"""The registry on SQLite and PostgreSQL: schema, sources, batches, canaries, tokens."""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url

from canary.errors import CanaryError, ConfigError, RegistryError, SourceError
from canary.model import (
    Address,
    Birthplace,
    CanaryStatus,
    Identity,
    Placement,
    Practitioner,
    Sex,
    SourceSpec,
    Token,
    TokenKind,
    VerifyResult,
    VerifyState,
)
from canary.registry import Registry, TokenTaken, migrate, scanstore
from canary.registry.schema import metadata

PASSWORD = "s3cret-Pw-42"


@pytest.fixture
def registry_sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request):
    """Each test using this runs on a new SQLite file and a new PostgreSQL database."""
    if request.param == "sqlite":
        return request.getfixturevalue("registry_sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def registry(registry_url):
    with Registry.open(registry_url, create=True) as reg:
        yield reg


def make_identity(n: int = 1, **changes) -> Identity:
    fields = dict(
        sex=Sex.FEMALE,
        civility="Mme",
        first_names=("Camille", "Anne"),
        last_name="Morel",
        birth_name="Lefèvre",
        birth_date=date(1984, 5, 7),
        birthplace=Birthplace("75115", "Paris 15e Arrondissement", "75"),
        nir="2840575115123" + "45",
        address=Address("12 rue des Tilleuls", "69003", "Lyon", "69383", "69"),
        phone=f"+3361234{n:04d}",
        phone2=None,
        email=f"camille.morel{n}@mail-canary.fr",
        url_code=f"k7q2x9code{n}",
        portal_url=f"https://portail.example.fr/p/k7q2x9code{n}",
        dns_label=f"h4x{n}",
        hostname=f"h4x{n}.dns.example.fr",
        portal_login=f"cmorel{n}",
        portal_password="Tilleul!2024",
        blood_group="A+",
        allergies=("pénicilline",),
        treatments=("amlodipine 5 mg",),
        gp=Practitioner("Dr", "Paul", "Girard", "10001234567"),
    )
    fields.update(changes)
    return Identity(**fields)


def tokens_of(identity: Identity) -> list[Token]:
    return [
        Token(TokenKind.EMAIL, identity.email),
        Token(TokenKind.PHONE, identity.phone),
        Token(TokenKind.URL_CODE, identity.url_code),
        Token(TokenKind.DNS_LABEL, identity.dns_label),
        Token(TokenKind.PORTAL_LOGIN, identity.portal_login),
    ]


def add_lab(registry: Registry, name: str = "lab") -> SourceSpec:
    spec = SourceSpec(
        name=name, seeder="sql", url_env="LAB_URL", mapping="/etc/canary/lab.toml",
        options={"table": "patients", "batch_size": 3}, establishment="CH Exemple",
        tenant="site-a", alert_to=("soc@hopital.example",), catchment=("69", "01"),
    )
    registry.add_source(spec)
    return spec


def plant(registry: Registry, batch, n: int) -> int:
    identity = make_identity(n)
    record = registry.add_planned(batch, identity, tokens_of(identity))
    registry.mark_planted(record.id, Placement(rows=({"table": "patients", "key": {"id": n}, "values": {}},)))
    return record.id


def with_password(url: str) -> str:
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def assert_one_line_without_password(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    assert PASSWORD not in message
    return message


# -- schema and opening ----------------------------------------------------------
def test_migrations_match_schema(registry):
    """Like `alembic check`: the migrated database is exactly schema.py."""
    with registry._engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        # ... and the comparison has teeth: a column missing from the migrations shows.
        changed = sa.MetaData(naming_convention=metadata.naming_convention)
        for table in metadata.tables.values():
            table.to_metadata(changed)
        changed.tables["tokens"].append_column(sa.Column("seen_at", sa.DateTime))
        assert [diff[0] for diff in compare_metadata(context, changed)] == ["add_column"]


@pytest.mark.parametrize("outdated_ok", [False, True])
def test_open_without_create_needs_init(registry_url, outdated_ok):
    url = with_password(registry_url)
    with pytest.raises(RegistryError) as err:
        Registry.open(url, outdated_ok=outdated_ok)
    message = assert_one_line_without_password(err)
    assert message.endswith("is not initialised: run `canary init`")
    assert "registry at " in message


def test_open_missing_sqlite_file_does_not_create_it(tmp_path):
    path = tmp_path / "nope.db"
    with pytest.raises(RegistryError, match="not initialised: run `canary init`"):
        Registry.open(f"sqlite:///{path}")
    assert not path.exists()


def test_create_is_idempotent_and_keeps_data(registry_url):
    with Registry.open(registry_url, create=True) as reg:
        add_lab(reg)
        reg.upgrade()
        reg.upgrade()
    with Registry.open(registry_url, create=True) as reg:
        assert reg.get_source("lab").seeder == "sql"
    with Registry.open(registry_url) as reg:
        reg.upgrade()
        assert [s.name for s in reg.list_sources()] == ["lab"]
        with reg._engine.connect() as connection:
            heads = MigrationContext.configure(connection).get_current_heads()
        assert tuple(heads) == migrate.head_revisions()


def test_quick_heads_are_alembics_heads_and_a_current_registry_opens_without_alembic(registry_url):
    """Registry.open recognises a current schema from the migration files' revision lines,
    without importing Alembic (0.3 s of every command's start); the heads are Alembic's."""
    assert migrate.quick_heads() == frozenset(migrate.head_revisions())
    Registry.open(registry_url, create=True).close()
    engine = sa.create_engine(registry_url)
    with engine.connect() as connection:
        assert migrate._is_current(connection)
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
        assert not migrate._is_current(connection)
        connection.rollback()
    engine.dispose()


def test_older_schema_asks_for_upgrade_then_upgrade_works(registry_url, tmp_path, monkeypatch):
    Registry.open(registry_url, create=True).close()
    # Ship a newer revision than the database has, as a future release would.
    newer = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, newer, ignore=shutil.ignore_patterns("__pycache__"))
    (newer / "versions" / "9001_test.py").write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n"
        f"revision = '9001'\ndown_revision = '{migrate.head_revisions()[0]}'\n"
        "branch_labels = None\ndepends_on = None\n"
        "def upgrade():\n    op.create_table('probe', sa.Column('id', sa.Integer, primary_key=True))\n"
        "def downgrade():\n    op.drop_table('probe')\n"
    )
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", newer)
    url = with_password(registry_url)
    with pytest.raises(RegistryError) as err:
        Registry.open(url)
    message = assert_one_line_without_password(err)
    assert message.endswith("is at an older schema: run `canary upgrade`")

    with Registry.open(url, outdated_ok=True) as reg:  # what `canary upgrade` does
        reg.upgrade()
        assert "probe" in sa.inspect(reg._engine).get_table_names()
    Registry.open(url).close()


def test_newer_schema_asks_to_upgrade_canary(registry_url):
    Registry.open(registry_url, create=True).close()
    engine = sa.create_engine(registry_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    for create in (False, True):
        with pytest.raises(RegistryError, match="revision 9999, newer than this version of canary"):
            Registry.open(registry_url, create=create)


def test_refuses_a_database_holding_other_tables(registry_url):
    engine = sa.create_engine(registry_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE patients (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(RegistryError, match="not a canary registry: give the registry its own database"):
        Registry.open(registry_url, create=True)
    with pytest.raises(RegistryError, match="holds tables but no canary registry"):
        Registry.open(registry_url)


def test_unreachable_postgres_is_one_line_without_password():
    url = f"postgresql+psycopg://canary:{PASSWORD}@127.0.0.1:1/registry"
    with pytest.raises(RegistryError) as err:
        Registry.open(url, create=True)
    message = assert_one_line_without_password(err)
    assert message.startswith("cannot reach registry at postgresql+psycopg://canary:***@127.0.0.1:1/registry: ")


def test_missing_postgres_database_is_one_line_without_password(postgres_url):
    url = make_url(with_password(postgres_url)).set(database="canary_nope_" + uuid.uuid4().hex[:8])
    with pytest.raises(RegistryError) as err:
        Registry.open(url.render_as_string(hide_password=False))
    message = assert_one_line_without_password(err)
    assert message.startswith("cannot reach registry at ") and "does not exist" in message


def test_sqlite_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "registry.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RegistryError) as err:
        Registry.open(f"sqlite:///{path}")
    assert "\n" not in str(err.value) and "not a database" in str(err.value)


def test_bad_url_is_a_registry_error():
    with pytest.raises(RegistryError, match="is not a database URL"):
        Registry.open("not a url")
    with pytest.raises(RegistryError, match="cannot use registry at nosuchdb://h/x"):
        Registry.open("nosuchdb://h/x")


# -- SQLite file safety -------------------------------------------------------------
def test_new_sqlite_registry_is_private(tmp_path):
    path = tmp_path / "sub" / "registry.db"
    with Registry.open(f"sqlite:///{path}", create=True) as reg:
        add_lab(reg)
        wal = path.with_name("registry.db-wal")
        for written in (path, wal):
            if written.exists():
                assert stat.S_IMODE(written.stat().st_mode) == 0o600, written
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_existing_sqlite_registry_readable_by_others_is_tightened(tmp_path):
    path = tmp_path / "registry.db"
    path.touch()
    os.chmod(path, 0o644)
    Registry.open(f"sqlite:///{path}", create=True).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_sqlite_pragmas(registry_sqlite_url):
    with Registry.open(registry_sqlite_url, create=True) as reg:
        with reg._engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0


def test_two_processes_share_an_sqlite_registry(registry_sqlite_url):
    with Registry.open(registry_sqlite_url, create=True) as planter, \
            Registry.open(registry_sqlite_url) as listener:
        batch = planter.new_batch(add_lab(planter).name, "b1", "alice", 1)
        canary_id = plant(planter, batch, 1)
        assert listener.find_token(make_identity(1).email).id == canary_id


def test_concurrent_writers_on_one_sqlite_file_all_succeed(registry_sqlite_url):
    """Planter and listener write at once: they wait for the lock instead of failing."""
    from concurrent.futures import ThreadPoolExecutor

    with Registry.open(registry_sqlite_url, create=True) as setup:
        add_lab(setup)
        batch = setup.new_batch("lab", "b1", "alice", 80)

    def writer(offset: int) -> list[int]:
        with Registry.open(registry_sqlite_url) as reg:
            return [plant(reg, batch, offset + n) for n in range(40)]

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(writer, (0, 1000)))
    with Registry.open(registry_sqlite_url) as reg:
        assert len(reg.list_canaries(status=CanaryStatus.PLANTED)) == 80
        assert reg.get_batch("b1").planted == 80
    assert len(set(results[0]) | set(results[1])) == 80


# -- sources ------------------------------------------------------------------------
def test_source_round_trip(registry):
    spec = add_lab(registry)
    assert registry.get_source("lab") == spec


def test_duplicate_source(registry):
    add_lab(registry)
    with pytest.raises(SourceError, match="source 'lab' already exists"):
        add_lab(registry)


def test_source_url_with_password_is_refused(registry):
    spec = SourceSpec(name="lab", seeder="sql", url=f"mysql+pymysql://root:{PASSWORD}@h/lis")
    with pytest.raises(ConfigError) as err:
        registry.add_source(spec)
    assert PASSWORD not in str(err.value)
    assert registry.list_sources() == []


def test_unknown_source(registry):
    with pytest.raises(SourceError) as err:
        registry.get_source("nope")
    assert str(err.value) == "unknown source 'nope': see `canary source list`"
    with pytest.raises(SourceError):
        registry.list_canaries(source="nope")
    with pytest.raises(SourceError):
        registry.new_batch("nope", None, "alice", 1)


def test_list_sources_counts_and_dates(registry):
    add_lab(registry)
    add_lab(registry, "empty")
    batch = registry.new_batch("lab", "b1", "alice", 3)
    first, second = plant(registry, batch, 1), plant(registry, batch, 2)
    identity = make_identity(3)
    registry.add_planned(batch, identity, tokens_of(identity))
    registry.record_verify(first, VerifyResult(VerifyState.MISSING, ("patients row gone",)))
    registry.set_status(second, CanaryStatus.RETIRED)

    summaries = {s.name: s for s in registry.list_sources()}
    assert list(summaries) == ["empty", "lab"]
    lab = summaries["lab"]
    assert lab.counts == {CanaryStatus.PLANNED: 1, CanaryStatus.PLANTED: 0,
                          CanaryStatus.MISSING: 1, CanaryStatus.RETIRED: 1}
    assert lab.live == 2
    assert lab.last_planted == registry.get_canary(second).planted_at
    assert lab.last_verified == registry.get_canary(first).verified_at
    assert lab.spec.catchment == ("69", "01")
    empty = summaries["empty"]
    assert set(empty.counts.values()) == {0} and empty.last_planted is None


def test_remove_source_refuses_while_canaries_are_live(registry):
    add_lab(registry)
    batch = registry.new_batch("lab", "b1", "alice", 1)
    canary_id = plant(registry, batch, 1)
    with pytest.raises(SourceError, match="still has 1 canaries planned, planted or missing"):
        registry.remove_source("lab")
    registry.set_status(canary_id, CanaryStatus.RETIRED)
    registry.remove_source("lab")
    assert registry.list_sources() == []
    assert not registry.is_taken(Token(TokenKind.EMAIL, make_identity(1).email))
    with pytest.raises(SourceError):
        registry.remove_source("lab")


def test_remove_source_force(registry):
    add_lab(registry)
    batch = registry.new_batch("lab", "b1", "alice", 1)
    plant(registry, batch, 1)
    registry.remove_source("lab", force=True)
    assert registry.list_canaries() == []
    # The name and the tokens are free again.
    add_lab(registry)
    batch = registry.new_batch("lab", "b1", "alice", 1)
    plant(registry, batch, 1)


# -- batches ------------------------------------------------------------------------
def test_batch_labels(registry):
    add_lab(registry)
    first = registry.new_batch("lab", None, "alice", 5)
    second = registry.new_batch("lab", None, "alice", 5, kind="drip")
    assert first.label.startswith("lab-") and len(first.label) == len("lab-YYYYMMDD-HHMMSS")
    if second.label != first.label:  # the clock may have ticked
        assert second.label.startswith("lab-")
    assert len({first.label, second.label}) == 2
    assert registry.get_batch(second.label) == second
    assert second.kind == "drip" and second.planned == 5 and second.planted == 0
    registry.new_batch("lab", "spring", "bob", 2)
    with pytest.raises(SourceError, match="batch label 'spring' is already used"):
        registry.new_batch("lab", "spring", "bob", 2)
    assert [b.label for b in registry.list_batches("lab")] == [first.label, second.label, "spring"]
    with pytest.raises(CanaryError, match="no batch labelled 'autumn'"):
        registry.get_batch("autumn")


def test_generated_label_gets_a_suffix_when_taken(registry, monkeypatch):
    from canary.registry import store

    fixed = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    monkeypatch.setattr(store, "_now", lambda: fixed)
    add_lab(registry)
    labels = [registry.new_batch("lab", None, "alice", 1).label for _ in range(3)]
    assert labels == ["lab-20250301-120000", "lab-20250301-120000-2", "lab-20250301-120000-3"]


# -- canaries and tokens -------------------------------------------------------------
def test_add_planned_round_trip(registry):
    add_lab(registry)
    batch = registry.new_batch("lab", "b1", "alice", 1)
    identity = make_identity(1)
    record = registry.add_planned(batch, identity, tokens_of(identity))
    stored = registry.get_canary(record.id)
    assert stored == record
    assert stored.identity == identity
    assert stored.status is CanaryStatus.PLANNED and stored.placement is None
    assert (stored.source, stored.batch) == ("lab", "b1")
    assert stored.created_at.tzinfo == timezone.utc
    assert abs(datetime.now(timezone.utc) - stored.created_at) < timedelta(hours=1)
    assert sorted(t.kind.value for t in registry.tokens_of(record.id)) == sorted(
        t.kind.value for t in tokens_of(identity)
    )


def test_token_taken_names_kind_and_owner_and_writes_nothing(registry):
    add_lab(registry)
    batch = registry.new_batch("lab", "b1", "alice", 2)
    first = registry.add_planned(batch, make_identity(1), tokens_of(make_identity(1)))
    clash = make_identity(2, email=make_identity(1).email.upper())  # same mailbox, other case
    with pytest.raises(TokenTaken) as err:
        registry.add_planned(batch, clash, tokens_of(clash))
    assert isinstance(err.value, CanaryError)
    assert err.value.kind is TokenKind.EMAIL and err.value.canary_id == first.id
    assert str(err.value) == f"email token already used by canary #{first.id}: draw another identity"
    assert [c.id for c in registry.list_canaries()] == [first.id]
    assert not registry.is_taken(Token(TokenKind.PHONE, clash.phone))  # rolled back together


def test_tokens_are_case_insensitive_and_stored_lower_case(registry):
    add_lab(registry)
    batch = registry.new_batch("lab", "b1", "alice", 1)
    identity = make_identity(1, email="Camille.Morel1@Mail-Canary.FR")
    record = registry.add_planned(batch, identity, tokens_of(identity))
    assert "camille.morel1@mail-canary.fr" in registry.taken_values(TokenKind.EMAIL)
    assert registry.is_taken(Token(TokenKind.EMAIL, " CAMILLE.morel1@mail-canary.fr "))
    assert not registry.is_taken(Token(TokenKind.PORTAL_LOGIN, "camille.morel1@mail-canary.fr"))
    assert registry.find_token("CAMILLE.MOREL1@mail-canary.fr").id == record.id
    assert registry.find_token("camille.morel1@mail-canary.fr", TokenKind.EMAIL).id == record.id
    assert registry.find_token("camille.morel1@mail-canary.fr", TokenKind.PHONE) is None
    assert registry.find_token("nobody@mail-canary.fr") is None
    # Registry data keeps the identity as generated; only tokens are folded.
    assert registry.get_canary(record.id).identity.email == "Camille.Morel1@Mail-Canary.FR"


def test_nir_tokens_are_stored_upper_case(registry):
    """canary.tokens.normalise writes NIRs upper case (2A/2B): taken_values must agree."""
    add_lab(registry)
    batch = registry.new_batch("lab", "b1", "alice", 1)
    identity = make_identity(1, nir="185022A00412345")
    record = registry.add_planned(batch, identity, [Token(TokenKind.NIR, "185022a00412345")])
    assert registry.taken_values(TokenKind.NIR) == {"185022A00412345"}
    assert registry.is_taken(Token(TokenKind.NIR, "185022A00412345"))
    assert registry.find_token("185022a00412345", TokenKind.NIR).id == record.id
    assert registry.find_token("185022a00412345").id == record.id


def test_duplicate_tokens_in_one_canary_are_stored_once(registry):
    add_lab(registry)
    batch = registry.new_batch("lab", "b1", "alice", 1)
    identity = make_identity(1)
    twice = tokens_of(identity) + [Token(TokenKind.PHONE, identity.phone)]
    record = registry.add_planned(batch, identity, twice)
    assert len(registry.tokens_of(record.id)) == len(tokens_of(identity))


def test_taken_values_is_one_query(registry):
    add_lab(registry)
    batch = registry.new_batch("lab", "b1", "alice", 30)
    for n in range(30):
        identity = make_identity(n)
        registry.add_planned(batch, identity, tokens_of(identity))
    statements = []
    sa.event.listen(registry._engine, "before_cursor_execute",
                    lambda conn, cursor, statement, *a: statements.append(statement))
    phones = registry.taken_values(TokenKind.PHONE)
    assert phones == {make_identity(n).phone for n in range(30)}
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


def test_get_canary_absent(registry):
    with pytest.raises(CanaryError) as err:
        registry.get_canary(999)
    assert str(err.value).startswith("no canary #999")


def test_mark_planted(registry):
    add_lab(registry)
    batch = registry.new_batch("lab", "b1", "alice", 2)
    identity = make_identity(1)
    record = registry.add_planned(batch, identity, tokens_of(identity))
    placement = Placement(
        rows=({"table": "patients", "key": {"id": 41}, "values": {"nom": "MOREL", "ddn": "1984-05-07"}},),
        extra={"note": "é"},
    )
    registry.mark_planted(record.id, placement)
    stored = registry.get_canary(record.id)
    assert stored.status is CanaryStatus.PLANTED
    assert stored.placement == placement
    assert stored.planted_at is not None and stored.planted_at >= stored.created_at
    assert registry.get_batch("b1").planted == 1
    with pytest.raises(CanaryError, match=f"canary #{record.id} is planted, not planned"):
        registry.mark_planted(record.id, placement)
    assert registry.get_batch("b1").planted == 1


def test_status_transitions(registry):
    add_lab(registry)
    batch = registry.new_batch("lab", "b1", "alice", 3)
    planned = registry.add_planned(batch, make_identity(1), tokens_of(make_identity(1))).id
    with pytest.raises(CanaryError, match="is planned: it cannot become planted: use mark_planted"):
        registry.set_status(planned, CanaryStatus.PLANTED)
    registry.set_status(planned, CanaryStatus.RETIRED, "plant failed: duplicate key")
    retired = registry.get_canary(planned)
    assert retired.status is CanaryStatus.RETIRED and retired.note == "plant failed: duplicate key"
    assert retired.retired_at is not None
    with pytest.raises(CanaryError, match="is retired: it cannot become planted"):
        registry.set_status(planned, CanaryStatus.PLANTED)
    registry.set_status(planned, CanaryStatus.RETIRED, "retired again")  # idempotent
    assert registry.get_canary(planned).retired_at == retired.retired_at

    planted = plant(registry, batch, 2)
    registry.set_status(planted, CanaryStatus.MISSING, "deleted by a DBA")
    registry.set_status(planted, CanaryStatus.PLANTED, "restored from backup")
    assert registry.get_canary(planted).status is CanaryStatus.PLANTED
    assert registry.get_canary(planted).note == "restored from backup"
    with pytest.raises(CanaryError, match="no canary #999"):
        registry.set_status(999, CanaryStatus.RETIRED)


def test_record_verify(registry):
    add_lab(registry)
    batch = registry.new_batch("lab", "b1", "alice", 2)
    canary_id = plant(registry, batch, 1)

    registry.record_verify(canary_id, VerifyResult(VerifyState.OK))
    ok = registry.get_canary(canary_id)
    assert (ok.status, ok.verify_state, ok.verify_details) == (CanaryStatus.PLANTED, VerifyState.OK, ())
    assert ok.verified_at.tzinfo == timezone.utc

    registry.record_verify(canary_id, VerifyResult(VerifyState.ALTERED, ("patients.tel changed",)))
    altered = registry.get_canary(canary_id)
    assert altered.status is CanaryStatus.MISSING
    assert altered.verify_state is VerifyState.ALTERED
    assert altered.verify_details == ("patients.tel changed",)

    registry.record_verify(canary_id, VerifyResult(VerifyState.OK))
    assert registry.get_canary(canary_id).status is CanaryStatus.PLANTED

    registry.record_verify(canary_id, VerifyResult(VerifyState.MISSING, ("patients row gone",)))
    assert registry.get_canary(canary_id).status is CanaryStatus.MISSING

    # A retired canary is meant to be gone: verify results never revive or demote it.
    registry.set_status(canary_id, CanaryStatus.RETIRED)
    registry.record_verify(canary_id, VerifyResult(VerifyState.OK))
    registry.record_verify(canary_id, VerifyResult(VerifyState.MISSING))
    assert registry.get_canary(canary_id).status is CanaryStatus.RETIRED


def test_list_canaries_filters(registry):
    add_lab(registry)
    add_lab(registry, "ehr")
    b1 = registry.new_batch("lab", "b1", "alice", 2)
    b2 = registry.new_batch("ehr", "b2", "alice", 1)
    a, b = plant(registry, b1, 1), plant(registry, b1, 2)
    c = registry.add_planned(b2, make_identity(3), tokens_of(make_identity(3))).id
    registry.set_status(b, CanaryStatus.RETIRED)

    ids = lambda records: [r.id for r in records]  # noqa: E731
    assert ids(registry.list_canaries()) == [a, b, c]
    assert ids(registry.list_canaries(source="lab")) == [a, b]
    assert ids(registry.list_canaries(batch="b2")) == [c]
    assert ids(registry.list_canaries(status=CanaryStatus.RETIRED)) == [b]
    live = (CanaryStatus.PLANNED, CanaryStatus.PLANTED, CanaryStatus.MISSING)
    assert ids(registry.list_canaries(status=live)) == [a, c]
    assert ids(registry.list_canaries(source="lab", status=[CanaryStatus.PLANTED])) == [a]
    with pytest.raises(CanaryError, match="no batch labelled 'b9'"):
        registry.list_canaries(batch="b9")


def test_timestamps_are_utc_whatever_the_session_time_zone(registry_url, monkeypatch):
    """PostgreSQL answers in the session's zone (PGTZ); we always hand back UTC."""
    from freezegun import freeze_time

    monkeypatch.setenv("PGTZ", "Europe/Paris")
    with Registry.open(registry_url, create=True) as reg:
        add_lab(reg)
        with freeze_time("2024-03-01 12:00:00"):
            batch = reg.new_batch("lab", None, "alice", 1)
            canary_id = plant(reg, batch, 1)
        record = reg.get_canary(canary_id)
        (timeline,) = scanstore.timelines(reg, ["lab"])  # the scanner's read, without the ORM's processors
    noon = datetime(2024, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert batch.label == "lab-20240301-120000"
    assert record.created_at == noon and record.planted_at == noon
    assert record.created_at.utcoffset() == timedelta(0)
    assert (timeline.canary_id, timeline.batch, timeline.status) == (canary_id, batch.label, CanaryStatus.PLANTED)
    assert timeline.created_at == noon and timeline.planted_at == noon and timeline.retired_at is None
    assert timeline.planted_at.utcoffset() == timedelta(0)
