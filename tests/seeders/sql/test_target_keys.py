"""Which key columns SqlTarget takes as numbered by the database (PostgreSQL).

Tryton before 7.0 (GNU Health 4.4) gives every id the default
``nextval((format('%I', 't_id_seq'))::regclass)``; SQLAlchemy's reflection
recognises only the plain ``nextval('t_id_seq'::regclass)`` of a serial
column, so the target used to refuse such tables (issue #11).
"""

from __future__ import annotations

import sqlalchemy as sa

from seeders.sql import rows as r
from seeders.sql.fields import ANY
from seeders.sql.target import SqlTarget
from support.gnuhealth_fixture import execute


def test_tryton_6_format_nextval_default_is_numbered_by_the_database(postgres_url):
    execute(postgres_url, """
        CREATE SEQUENCE party_party_id_seq;
        CREATE TABLE party_party (
            id INTEGER DEFAULT nextval((format('%I'::text, 'party_party_id_seq'::text))::regclass) NOT NULL,
            name VARCHAR, CONSTRAINT party_party_pkey PRIMARY KEY (id));
        CREATE TABLE plain (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR);
        CREATE TABLE text_key (id VARCHAR DEFAULT 'x' NOT NULL PRIMARY KEY)""")
    target = SqlTarget("t", postgres_url)
    target.connect()
    try:
        assert target.auto_increments(target.table("party_party").c.id)
        assert not target.auto_increments(target.table("plain").c.id)
        assert not target.auto_increments(target.table("text_key").c.id)
        gen = {"id": r.Generated(r.AUTOINCREMENT)}
        assert target.structure_problems("party_party", ("id",), {"id": ANY, "name": ANY}, generated=gen) == []
        assert target.structure_problems("plain", ("id",), {"id": ANY, "name": ANY}, generated=gen)[0].message \
            .startswith("is not numbered by the database")
        placed = target.insert([r.RowPlan(table="party_party", key=("id",), values={"name": "Martin"},
                                          generated=gen)])
        assert placed[0]["key"] == {"id": 1}
    finally:
        target.close()
    assert execute(postgres_url, "SELECT last_value FROM party_party_id_seq")[0][0] == 1
