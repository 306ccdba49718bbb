"""Retire deletes the canary's rows only while every value recorded at planting is still there:
never a real patient who got its key since, nor a row someone rewrote."""

from __future__ import annotations

import sqlite3

import pytest

from canary.errors import CanaryAltered
from seeders.sql.rows import AUTOINCREMENT, Generated, RowPlan
from seeders.sql.target import SqlTarget

VALUES = {"nom": "CANARD", "prenom": "Lucie", "naissance": "1961-04-02", "tel": "0612345678"}


@pytest.fixture
def ehr(tmp_path):
    path = tmp_path / "ehr.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY, nom TEXT, prenom TEXT, naissance TEXT, "
                     "tel TEXT)")
        conn.execute("INSERT INTO patients (nom, prenom, naissance, tel) VALUES ('DUPONT', 'Marc', "
                     "'1950-01-01', '0240000000')")
    target = SqlTarget("ehr", f"sqlite:///{path}")
    target.connect()
    placed = target.insert([RowPlan("patients", ("id",), dict(VALUES), generated={"id": Generated(AUTOINCREMENT)})])
    yield path, target, placed
    target.close()


def rows(path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT nom, prenom FROM patients ORDER BY id").fetchall()


def test_a_key_given_to_a_real_patient_since_is_not_deleted(ehr):
    path, target, placed = ehr
    with sqlite3.connect(path) as conn:  # staff delete the canary; SQLite gives its rowid to the next patient
        conn.execute("DELETE FROM patients WHERE nom = 'CANARD'")
        conn.execute("INSERT INTO patients (nom, prenom, naissance, tel) VALUES ('MARTIN', 'Paul', '1980-05-06', "
                     "'0299000000')")
    with pytest.raises(CanaryAltered, match=r"was altered since planting.*nothing of this canary was deleted") as err:
        target.delete(placed)
    assert "MARTIN" not in str(err.value) and "nom, prenom, naissance, tel changed" in str(err.value)
    assert rows(path) == [("DUPONT", "Marc"), ("MARTIN", "Paul")]


@pytest.mark.parametrize("column, value", [("nom", "CANARDE"), ("prenom", "Lucy"), ("naissance", "1961-04-03"),
                                           ("tel", "0611111111")])
def test_one_identifying_value_changed_is_enough_to_keep_the_row(ehr, column, value):
    path, target, placed = ehr
    with sqlite3.connect(path) as conn:  # half the values kept used to be "ours": no longer
        conn.execute(f"UPDATE patients SET {column} = ? WHERE nom LIKE 'CANARD%'", (value,))
    with pytest.raises(CanaryAltered, match=rf"\({column} changed"):
        target.delete(placed)
    assert len(rows(path)) == 2


def test_an_unchanged_canary_is_deleted_and_only_it(ehr):
    path, target, placed = ehr
    assert target.delete(placed) == 1
    assert rows(path) == [("DUPONT", "Marc")]


def test_columns_the_application_rewrites_are_not_compared(tmp_path):
    path = tmp_path / "ehr.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY, nom TEXT, modifie TEXT)")
    target = SqlTarget("ehr", f"sqlite:///{path}")
    target.connect()
    try:
        placed = target.insert([RowPlan("patients", ("id",), {"nom": "CANARD", "modifie": "2025-01-01"},
                                        generated={"id": Generated(AUTOINCREMENT)}, unchecked=frozenset({"modifie"}))])
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE patients SET modifie = '2026-12-01'")
        assert target.delete(placed) == 1
    finally:
        target.close()
