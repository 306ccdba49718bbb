"""Retire deletes the canary's rows, never a real patient who got its key since."""

from __future__ import annotations

import sqlite3

import pytest

from canary.errors import SourceError
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
    with pytest.raises(SourceError, match=r"no longer holds this canary.*nothing was deleted"):
        target.delete(placed)
    assert rows(path) == [("DUPONT", "Marc"), ("MARTIN", "Paul")]


def test_an_edited_canary_is_still_retired(ehr):
    path, target, placed = ehr
    with sqlite3.connect(path) as conn:  # a clerk corrects the phone number: still our row
        conn.execute("UPDATE patients SET tel = '0611111111' WHERE nom = 'CANARD'")
    assert target.delete(placed) == 1
    assert rows(path) == [("DUPONT", "Marc")]
