"""The Mediboard seeder on OX 4.x (dPpatients 4.94): what CPatient::store leaves behind there.

Each test pins one behaviour of the public OX source (cited in
docs/seeders/mediboard.md): creator and creation date, patient signatures,
the manual identity source and status, every first name in ``prenoms``,
``user_action`` when ``activer_user_action`` is on, the logged IPP with its
``datetime_create``, and names in the site's identity-vigilance mode.
"""

from __future__ import annotations

import pytest

from support.app_databases import module_database, opened_on
from support.app_seeder_helpers import dispose, execute, query, snapshot, spec
from canary.errors import ConfigError, SourceError
from canary.model import Placement, VerifyState
from support.mediboard_fixture import CLASSES, CLERK, IPP_TAG, WORKSTATION, create_site, set_vigilance, strict
from seeders.mediboard import vigilance
from seeders.mediboard.seeder import MediboardSeeder
from seeders.mediboard.soundex2 import soundex2
from support.sql_seeder_helpers import make_identity

# Three first names, accents, a compound first name, a married name: identity 25 is a woman
# with a birth name; 41 a man with one first name.
MANY = dict(first_names=("Anne-Sophie", "Élodie", "Zoé"), last_name="Lefèvre", birth_name="Œuvrard")


@pytest.fixture(scope="module")
def ox4():
    yield from module_database("CANARY_TEST_MARIADB_URL", "MariaDB",
                               lambda url: create_site(url, count=120, version="4.94"))


@pytest.fixture
def seeder(ox4):
    yield from opened_on(ox4, lambda url: MediboardSeeder(spec("dpi", "mediboard"), url), snapshot)


@pytest.fixture
def small_site(mariadb_url):
    yield mariadb_url
    dispose(mariadb_url)


def _by_table(placement: Placement) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in placement.rows:
        out.setdefault(row["table"], []).append(row)
    return out


def test_a_patient_as_cpatient_store_writes_it_on_ox4(ox4, seeder):
    ident = make_identity(25, **MANY)
    assert seeder.host.schema.text == "4.94" and seeder.host.log_table == "user_action"
    assert seeder.host.vigilance == "strict"  # the 2023 code (4.94) is always strict
    placement = seeder.plant(ident)
    rows = _by_table(placement)
    pid = rows["patients"][0]["key"]["patient_id"]
    patient = query(ox4, "SELECT * FROM patients WHERE patient_id = :p", p=pid)[0]
    # Strict mode: upper case, no accents, Œ -> OE; every first name kept, in order.
    assert (patient["nom"], patient["nom_jeune_fille"]) == ("LEFEVRE", "OEUVRARD")
    assert patient["prenom"] == "ANNE-SOPHIE" and patient["prenoms"] == "ANNE-SOPHIE ELODIE ZOE"
    assert patient["prenom_usuel"] == "ANNE-SOPHIE"  # the site's patients have it filled
    assert patient["nom_soundex2"] == soundex2("LEFEVRE") and patient["prenom_soundex2"] == soundex2("ANNE-SOPHIE")
    # CPatient::store on creation.
    assert patient["creator_id"] == CLERK and patient["creation_date"] is not None
    # CSourceIdentite::manageSource + PatientStatus::updateStatus.
    source = query(ox4, "SELECT * FROM source_identite WHERE patient_id = :p", p=pid)
    assert len(source) == 1 and patient["source_identite_id"] == source[0]["source_identite_id"]
    assert patient["status"] == "PROV"
    s = source[0]
    assert (s["mode_obtention"], s["active"], s["validate_identity"]) == ("manuel", "1", "1")
    assert (s["nom_naissance"], s["prenom_naissance"], s["prenoms"]) == ("OEUVRARD", "ANNE-SOPHIE",
                                                                        "ANNE-SOPHIE ELODIE ZOE")
    assert s["date_naissance"] == ident.birth_date.isoformat() and s["sexe"] == "f"
    assert s["debut"] == patient["creation_date"].date()
    # CPatientSignature::addPatientSignature: used name, then the birth name.
    born = ident.birth_date.strftime("%Y%m%d")
    assert [r["signature"] for r in query(ox4, "SELECT signature FROM patient_signature WHERE patient_id = :p "
                                                "ORDER BY patient_signature_id", p=pid)] == [
        f"lefevre_annesophie_{born}", f"oeuvrard_annesophie_{born}"]
    # The IPP: datetime_create = last_update = the creation.
    idex = query(ox4, "SELECT * FROM id_sante400 WHERE object_class = 'CPatient' AND object_id = :p", p=pid)[0]
    assert idex["tag"] == IPP_TAG and idex["datetime_create"] == idex["last_update"] == patient["creation_date"]
    # user_action, not user_log: create, create source, store status, store source, create idex, ...
    actions = query(ox4, "SELECT a.*, c.object_class FROM user_action a JOIN object_class c "
                         "USING (object_class_id) WHERE a.user_action_id IN :ids ORDER BY user_action_id",
                    ids=[r["key"]["user_action_id"] for r in rows["user_action"]])
    assert [(a["object_class"], a["type"]) for a in actions][:5] == [
        ("CPatient", "create"), ("CSourceIdentite", "create"), ("CPatient", "store"), ("CPatient", "store"),
        ("CIdSante400", "create")]
    assert {(a["user_id"], a["ip_address"], a["date"]) for a in actions} == {
        (CLERK, WORKSTATION, patient["creation_date"])}
    data = query(ox4, "SELECT user_action_id, field, value FROM user_action_data WHERE user_action_id IN :ids "
                      "ORDER BY user_action_data_id", ids=[a["user_action_id"] for a in actions])
    assert [(d["user_action_id"], d["field"], d["value"]) for d in data] == [
        (actions[2]["user_action_id"], "status", None), (actions[3]["user_action_id"], "source_identite_id", None)]
    assert not [r for r in placement.rows if r["table"] == "user_log"]
    assert seeder.verify(ident, placement).state is VerifyState.OK
    seeder.retire(placement)


def test_second_first_names_are_kept(ox4, seeder):
    # Before: prenom_2..4 were written, and silently dropped on a 4.33+ schema.
    ident = make_identity(7, first_names=("Jean", "Noël", "Théo"))
    placement = seeder.plant(ident)
    patient = _by_table(placement)["patients"][0]["values"]
    assert patient["prenoms"] == "JEAN NOEL THEO"
    assert not {"prenom_2", "prenom_3", "prenom_4"} & set(patient)
    seeder.retire(placement)


def test_verify_notices_a_deleted_or_altered_ox4_row(ox4, seeder):
    a, b, c = make_identity(3, **MANY), make_identity(4), make_identity(5)
    pa, pb, pc = seeder.plant(a), seeder.plant(b), seeder.plant(c)
    sign = _by_table(pa)["patient_signature"][0]["key"]["patient_signature_id"]
    execute(ox4, "DELETE FROM patient_signature WHERE patient_signature_id = :s", s=sign)
    assert seeder.verify(a, pa).state is VerifyState.MISSING
    source = _by_table(pb)["source_identite"][0]["key"]["source_identite_id"]
    execute(ox4, "UPDATE source_identite SET prenoms = 'X' WHERE source_identite_id = :s", s=source)
    altered = seeder.verify(b, pb)
    assert altered.state is VerifyState.ALTERED and "source_identite.prenoms changed" in altered.details
    data = _by_table(pc)["user_action_data"][0]["key"]["user_action_data_id"]
    execute(ox4, "DELETE FROM user_action_data WHERE user_action_data_id = :d", d=data)
    assert seeder.verify(c, pc).state is VerifyState.MISSING
    # Put back what the test broke, so that retire leaves the site exactly as it was.
    execute(ox4, "UPDATE source_identite SET prenoms = :p WHERE source_identite_id = :s",
            p=_by_table(pb)["source_identite"][0]["values"]["prenoms"], s=source)
    for placement in (pa, pb, pc):
        seeder.retire(placement)


def test_locate_rebuilds_an_ox4_placement(ox4, seeder):
    ident = make_identity(14, allergies=("Pénicilline", "Arachide"), **MANY)
    planted = seeder.plant(ident)
    found = seeder.locate(ident)
    assert found is not None
    assert [(r["table"], r["key"]) for r in found.rows] == [(r["table"], r["key"]) for r in planted.rows]
    assert seeder.verify(ident, found).state is VerifyState.OK
    seeder.retire(Placement.from_dict(found.to_dict()))


def test_check_access_asks_update_on_patients_for_the_source_binding(seeder):
    assert seeder.check_access() == []  # root
    assert set(seeder.written()) == {"patients", "user_action", "user_action_data", "patient_signature",
                                     "source_identite", "id_sante400", "dossier_medical", "antecedent"}


def test_user_log_when_activer_user_action_is_off(small_site):
    create_site(small_site, count=60, version="4.94", log_table="user_log")
    before = snapshot(small_site)
    with MediboardSeeder(spec("dpi", "mediboard"), small_site) as seeder:
        assert seeder.host.log_table == "user_log"
        ident = make_identity(9)
        placement = seeder.plant(ident)
        logs = [r["values"] for r in placement.rows if r["table"] == "user_log"]
        assert [(v["object_class"], v["type"], v["fields"], v["extra"]) for v in logs][:5] == [
            ("CPatient", "create", None, None), ("CSourceIdentite", "create", None, None),
            ("CPatient", "store", "status", '{"status":""}'),
            ("CPatient", "store", "source_identite_id", '{"source_identite_id":""}'),
            ("CIdSante400", "create", None, None)]
        assert not [r for r in placement.rows if r["table"].startswith("user_action")]
        assert seeder.verify(ident, placement).state is VerifyState.OK
        seeder.retire(placement)
    assert snapshot(small_site) == before


def test_the_config_row_decides_user_action_even_without_history(small_site):
    create_site(small_site, count=60, version="4.94", log_table="user_log")
    execute(small_site, "UPDATE config_db SET value = '1' WHERE `key` = 'activer_user_action'")
    with MediboardSeeder(spec("dpi", "mediboard", user_id="7"), small_site) as seeder:
        assert seeder.host.log_table == "user_action"
    # Without the config row (config kept in includes/config.php): the history of recent creations tells.
    execute(small_site, "DELETE FROM config_db WHERE `key` = 'activer_user_action'")
    with MediboardSeeder(spec("dpi", "mediboard", user_id="7"), small_site) as seeder:
        assert seeder.host.log_table == "user_log"
    execute(small_site, "DELETE FROM object_class WHERE object_class = 'CSourceIdentite'")
    with pytest.raises(ConfigError, match="object_class has no row for CSourceIdentite"):
        MediboardSeeder(spec("dpi", "mediboard", log_table="user_action", user_id="7"), small_site).open()


def test_user_action_learnt_from_the_history_without_config(small_site):
    create_site(small_site, count=60, version="4.94", log_table="user_action")
    execute(small_site, "DELETE FROM config_db")
    with MediboardSeeder(spec("dpi", "mediboard"), small_site) as seeder:
        assert seeder.host.log_table == "user_action" and seeder.host.user_id == 7
    execute(small_site, "DELETE FROM object_class WHERE object_class = 'CSourceIdentite'")
    with pytest.raises(ConfigError, match="object_class has no row for CSourceIdentite"):
        MediboardSeeder(spec("dpi", "mediboard", user_id="7"), small_site).open()


def test_medium_mode_from_the_group_config(small_site):
    create_site(small_site, count=60, version="4.94")
    set_vigilance(small_site, "medium")
    # OX 4.94 (2023 code) has no such config: always strict, whatever a stale row says.
    with MediboardSeeder(spec("dpi", "mediboard"), small_site) as seeder:
        assert seeder.host.vigilance == "strict"
    # dPpatients 4.48 (2021 code) reads the group config.
    execute(small_site, "UPDATE modules SET mod_version = '4.48' WHERE mod_name = 'dPpatients'")
    with MediboardSeeder(spec("dpi", "mediboard"), small_site) as seeder:
        assert seeder.host.vigilance == "medium"
        rows = seeder.plan(make_identity(25, first_names=("Anne-Sophie", "Zoé"), last_name="D'Aubigné-Lefèvre",
                                         birth_name="Müller"))
    patient = next(r for r in rows if r.table == "patients").values
    # removeBanCharacter($s, true): accents off, hyphens and apostrophes -> spaces; first names capitalised.
    assert patient["nom"] == "D AUBIGNE LEFEVRE" and patient["nom_jeune_fille"] == "MULLER"
    assert patient["prenom"] == "Anne Sophie" and patient["prenoms"] == "Anne Sophie Zoe"


def test_light_mode_option_keeps_accents(ox4):
    with MediboardSeeder(spec("dpi", "mediboard", identito_vigilance="light"), ox4) as seeder:
        rows = seeder.plan(make_identity(25, **MANY))
    patient = next(r for r in rows if r.table == "patients").values
    assert (patient["nom"], patient["prenom"], patient["prenoms"]) == ("LEFÈVRE", "Anne-Sophie",
                                                                       "Anne-Sophie Élodie Zoé")
    with pytest.raises(ConfigError, match="identito_vigilance"):
        MediboardSeeder.validate_options({"identito_vigilance": "paranoid"})


@pytest.mark.parametrize("text,mode,firstname,expected", [
    ("Lefèvre", "strict", False, "LEFEVRE"),
    ("Œuvrard", "strict", False, "OEUVRARD"),
    ("Strauß", "strict", False, "STRAUB"),  # removeAccents maps ß to b
    ("D'Aubigné--Roux", "strict", False, "D'AUBIGNE-ROUX"),
    ("Da Silva.", "strict", False, "DA SILVA "),  # outside the set -> a space, not collapsed
    ("Jean-Pierre", "medium", True, "Jean Pierre"),
    ("Dupré 2", "medium", False, "DUPRE 2"),
    ("élodie", "light", True, "Élodie"),
])
def test_apply_mode_follows_removebancharacter(text, mode, firstname, expected):
    assert vigilance.apply_mode(text, firstname=firstname, mode=mode) == expected


def test_fixture_and_seeder_agree_on_strict_names():
    for name in ("Lefèvre", "Girard-Rousseau", "Da Silva", "Œuvrard", "Müller", "Bénard", "Dupré"):
        assert vigilance.apply_mode(name, firstname=False, mode="strict") == strict(name)


def test_signature_as_createsignature_builds_it():
    assert vigilance.signature("D'AUBIGNE-ROUX", "JEAN PIERRE", "1980-05-12") == "daubigneroux_jeanpierre_19800512"
    assert vigilance.signature("LEFÈVRE", "Élodie", "1980-05-12") == "lefevre_elodie_19800512"


def test_class_ids_are_the_sites(seeder):
    registration = ("CPatient", "CSourceIdentite", "CIdSante400", "CDossierMedical", "CAntecedent")
    assert seeder.host.class_ids == {c: CLASSES[c] for c in registration}


def test_a_failed_source_binding_leaves_nothing_even_on_innodb(small_site):
    # The binding is a second statement after the insert (as in Mediboard): if it fails,
    # the rows already committed are taken out again, whatever the engine.
    create_site(small_site, count=60, version="4.94")
    for table in ("patients", "patient_signature", "source_identite", "user_action", "user_action_data",
                  "id_sante400", "dossier_medical", "antecedent"):
        execute(small_site, f"ALTER TABLE {table} ENGINE=InnoDB")
    execute(small_site, "CREATE TRIGGER no_update BEFORE UPDATE ON patients FOR EACH ROW "
                        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'patients are read-only today'")
    before = snapshot(small_site)
    ident = make_identity(31)
    with MediboardSeeder(spec("dpi", "mediboard"), small_site) as seeder:
        assert seeder.host.transactional
        with pytest.raises(SourceError, match="binding the identity source failed: .*read-only today"):
            seeder.plant(ident)
        assert seeder.locate(ident) is None
    assert snapshot(small_site) == before
