"""Mapping files: every key, transform and error, without a database."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from canary.errors import MappingError
from seeders.sql.fields import catalogue, field_kind
from seeders.sql.mapping import load_mapping, parse_mapping
from seeders.sql.rows import Generated, Ref
from seeders.common.transforms import PHONE_FORMATS, format_phone, strip_accents
from support.sql_seeder_helpers import MAPPING, make_identity

NOW = datetime(2024, 3, 5, 14, 7, 9)


def _values(columns: dict, identity=None, **table) -> dict:
    """Values of a one-table mapping with these columns, for ``identity``."""
    data = {"table": [{"name": "t", "key": ["k"], "columns": {"k": {"generate": "max+1"}, **columns}, **table}]}
    rows = parse_mapping(data, "m.toml").rows(identity or make_identity(1), NOW)
    return rows[0].values


def _error(data: dict) -> str:
    with pytest.raises(MappingError) as err:
        parse_mapping(data, "m.toml")
    message = str(err.value)
    assert "\n" not in message
    return message


def _one(columns: dict) -> dict:
    return {"table": [{"name": "patients", "key": ["k"], "columns": {"k": {"generate": "max+1"}, **columns}}]}


def test_field_paths_cover_the_identity_model():
    names = catalogue()
    for path in ("last_name", "first_name", "first_names", "address.postcode", "birthplace.insee_code",
                 "gp.rpps", "birth_date", "phone2", "nir", "married_name_used"):
        assert path in names
    assert field_kind("first_names") == "list" and field_kind("birth_date") == "date"
    assert field_kind("extra.ipp_local") == "any"
    assert field_kind("extra") is None and field_kind("nope") is None


def test_text_transforms_compose_in_order():
    ident = make_identity(1, last_name="Œuvrard-Lefèvre", first_names=("élodie", "Zoé"))
    values = _values({
        "nom": {"field": "last_name", "transform": ["strip_accents", "upper"]},
        "nom2": {"field": "last_name", "transform": "lower"},
        "prenom": {"field": "first_name", "transform": "title"},
        "cap": {"field": "first_name", "transform": ["strip_accents", "capitalize"]},
        "short": "last_name",  # shorthand for { field = "last_name" }
    }, ident)
    assert values["nom"] == "OEUVRARD-LEFEVRE"
    assert values["nom2"] == "œuvrard-lefèvre"
    assert values["prenom"] == "Élodie"
    assert values["cap"] == "Elodie"
    assert values["short"] == "Œuvrard-Lefèvre"
    assert strip_accents("Ça, Noël, Straße") == "Ca, Noel, Strasse"


def test_lists_dates_maps_defaults_and_nested_fields():
    ident = make_identity(2, first_names=("Jean", "Pierre", "Marie"), birth_date=date(1984, 3, 12),
                          treatments=())
    values = _values({
        "prenoms": {"field": "first_names", "join": " "},
        "second": {"field": "first_names", "index": 1},
        "third": {"field": "first_names[2]"},
        "fourth": {"field": "first_names", "index": 3, "default": "-"},
        "ddn": {"field": "birth_date"},
        "ddn_fr": {"field": "birth_date", "format": "%d/%m/%Y"},
        "ddn_int": {"field": "birth_date", "format": "%Y%m%d"},
        "sexe": {"field": "sex", "map": {"M": 1, "F": 2}},
        "cp": {"field": "address.postcode"},
        "insee": {"field": "birthplace.insee_code"},
        "rpps": {"field": "gp.rpps"},
        "traitements": {"field": "treatments", "join": "; ", "default": ""},
        "tel2": {"field": "phone2", "phone": "spaced"},
        "married": {"field": "married_name_used", "map": {"true": "O", "false": "N"}},
    }, ident)
    assert values["prenoms"] == "Jean Pierre Marie"
    assert (values["second"], values["third"], values["fourth"]) == ("Pierre", "Marie", "-")
    assert values["ddn"] == date(1984, 3, 12)
    assert (values["ddn_fr"], values["ddn_int"]) == ("12/03/1984", "19840312")
    assert values["sexe"] == 1
    assert values["cp"] == ident.address.postcode and values["insee"] == ident.birthplace.insee_code
    assert values["rpps"] == ident.gp.rpps
    assert values["traitements"] == ""
    assert values["tel2"] is None  # identity 2 has no second phone, no default: NULL
    assert values["married"] == "N"


def test_phone_formats():
    ident = make_identity(3, phone="+33612345678")
    values = _values({style: {"field": "phone", "phone": style} for style in PHONE_FORMATS}, ident)
    assert values == {
        "e164": "+33612345678", "national": "0612345678", "spaced": "06 12 34 56 78",
        "dotted": "06.12.34.56.78", "dashed": "06-12-34-56-78", "international": "+33 6 12 34 56 78",
    }
    assert format_phone("+33145678901", "dotted") == "01.45.67.89.01"


def test_templates_constants_now_and_generated_columns():
    ident = make_identity(4, first_names=("Anne", "Lise"), birth_date=date(1990, 7, 1))
    data = {"table": [
        {"name": "patients", "key": ["id"], "columns": {
            "id": {"generate": "autoincrement"},
            "ipp": {"generate": "max+1"},
            "num": {"generate": "sequence", "sequence": "num_seq"},
            "guid": {"generate": "uuid4"},
            "hex": {"generate": "uuid4-hex"},
            "libelle": {"template": "{last_name} {first_names[1]} ({birth_date:%d/%m/%Y})", "transform": "upper"},
            "vide": {"template": "{address.line2}", "default": "RAS"},
            "origine": {"const": "ADM"},
            "rang": {"const": 3},
            "cree": {"now": "datetime"},
            "jour": {"now": "date"},
            "texte": {"now": "%Y-%m-%d %H:%M:%S"},
            "libre": {"field": "email", "verify": False},
        }},
        {"name": "contacts", "key": ["id"], "columns": {
            "id": {"generate": "autoincrement"}, "patient": {"ref": "patients.id"}, "v": {"field": "email"}}},
    ]}
    patients, contacts = parse_mapping(data, "m.toml").rows(ident, NOW)
    values = patients.values
    assert values["libelle"] == f"{ident.last_name.upper()} LISE (01/07/1990)"
    assert ident.address.line2 == "" and values["vide"] == "RAS"
    assert (values["origine"], values["rang"]) == ("ADM", 3)
    assert (values["cree"], values["jour"], values["texte"]) == (NOW, NOW.date(), "2024-03-05 14:07:09")
    assert len(values["guid"]) == 36 and values["guid"].count("-") == 4
    assert len(values["hex"]) == 32 and int(values["hex"], 16) >= 0
    assert "id" not in values and "ipp" not in values  # generated inside the insert transaction
    assert patients.generated == {"id": Generated("autoincrement"), "ipp": Generated("max+1"),
                                  "num": Generated("sequence", "num_seq")}
    assert patients.unchecked == {"cree", "jour", "texte", "libre"}
    assert contacts.refs == {"patient": Ref("patients", "id")}
    assert contacts.key == ("id",)


def test_the_test_mapping_file_loads():
    mapping = load_mapping(MAPPING)
    assert [t.alias for t in mapping.tables] == ["patients", "contact_email", "contact_tel"]
    assert [t.name for t in mapping.tables] == ["patients", "contacts", "contacts"]
    analyses, portail = mapping.related
    assert (analyses.alias, analyses.link, analyses.when, analyses.rows, analyses.share, analyses.at) == (
        "analyses", "patient_id", "prelevement", None, None, "events")
    assert (portail.alias, portail.rows, portail.share, portail.at) == ("portail", 1, None, "later")
    assert analyses.table.column("patient_id").ref == Ref("patients", "id")
    assert analyses.table.column("resultat").given == ("code",)
    assert set(mapping.match) == {"nir", "last_name", "first_name", "birth_date"}
    assert [(r.alias, r.column) for r in mapping.locate] == [("patients", "nir"), ("contact_email", "valeur")]


@pytest.mark.parametrize("columns,expected", [
    ({"nom": {"field": "lastname"}}, "table 'patients', column 'nom', unknown field 'lastname' (did you mean 'last_name'?)"),
    ({"nom": {"field": "last_name", "transform": "uper"}}, "column 'nom', unknown transform 'uper' (did you mean 'upper'?)"),
    ({"nom": {"field": "last_name", "transfrom": "upper"}}, "column 'nom', unknown key 'transfrom' with field (did you mean 'transform'?)"),
    ({"nom": {"field": "last_name", "const": "X"}}, "column 'nom', needs exactly one of field, template"),
    ({"nom": {}}, "column 'nom', needs exactly one of"),
    ({"nom": 3}, "column 'nom', must be a table such as"),
    ({"p": {"field": "first_names"}}, "'first_names' is a list: give join"),
    ({"p": {"field": "last_name", "join": " "}}, "'last_name' is not a list"),
    ({"d": {"field": "last_name", "format": "%Y"}}, "format applies to dates only"),
    ({"d": {"field": "birth_date", "format": "Y-m-d"}}, "format must be a strftime format"),
    ({"d": {"field": "birth_date", "transform": "upper"}}, "transform applies to text but the value is a date"),
    ({"t": {"field": "phone", "phone": "pretty"}}, "unknown phone format 'pretty' (known: e164, national"),
    ({"t": {"field": "birth_date", "phone": "spaced"}}, "phone applies to phone numbers"),
    ({"t": {"template": "{telephone}"}}, "unknown field 'telephone' in template"),
    ({"t": {"template": "{first_names}"}}, "write {first_names[0]} in the template"),
    ({"t": {"template": "{nir!r}"}}, "bad template"),
    ({"t": {"now": "today"}}, "now must be \"datetime\", \"date\" or a strftime format"),
    ({"t": {"generate": "random"}}, "unknown generate 'random' (known: autoincrement, max+1, sequence, uuid4, uuid4-hex)"),
    ({"t": {"generate": "sequence"}}, "goes with sequence = \"NAME\""),
    ({"t": {"ref": "contacts.id"}}, "ref 'contacts.id' must name a column of a table mapped above"),
    ({"t": {"ref": "patients.nope"}}, "ref 'patients.nope' must name a column of a table mapped above"),
    ({"t": {"const": [1, 2]}}, "a constant or default must be a single value"),
    ({"t": {"field": "sex", "map": {}}}, "map must be a table"),
    ({"t": {"field": "nir", "verify": "no"}}, "verify must be true or false"),
])
def test_column_errors_name_file_table_and_column(columns, expected):
    message = _error(_one(columns))
    assert message.startswith("m.toml: table 'patients', column '")
    assert expected in message


@pytest.mark.parametrize("data,expected", [
    ({}, "m.toml: no [[table]]"),
    ({"tables": []}, "m.toml: unknown key 'tables' (did you mean 'table'?)"),
    ({"table": [{"key": ["k"], "columns": {"k": {"const": 1}}}]}, "every [[table]] needs name"),
    ({"table": [{"name": "t", "columns": {"k": {"const": 1}}}]}, "table 't', needs key = "),
    ({"table": [{"name": "t", "key": "id", "columns": {"k": {"const": 1}}}]},
     "table 't', column 'id', is a key column but is not mapped"),
    ({"table": [{"name": "t", "key": "k"}]}, "table 't', no [table.columns]"),
    ({"table": [{"name": "t", "key": "k", "columns": {"k": {"const": 1}}, "colums": {}}]},
     "table 't', unknown key 'colums' (did you mean 'columns'?)"),
    ({"table": [{"name": "t", "key": "k", "columns": {"k": {"const": 1}}}] * 2}, "table 't', is mapped twice"),
    ({"table": [{"name": "t", "key": "k", "columns": {"k": {"generate": "autoincrement"},
                                                      "j": {"generate": "autoincrement"}}}]},
     "more than one autoincrement column"),
    ({**_one({"n": "last_name"}), "match": {"last_name": "patients.n"}}, "[match] needs both last_name and birth_date"),
    ({**_one({"n": "last_name"}), "match": {"nir": "patients.nope"}}, "[match] nir = 'patients.nope' is not a mapped"),
    ({**_one({"n": "last_name"}), "match": {"name": "patients.n"}}, "[match] unknown key 'name'"),
    ({**_one({"n": {"now": "date"}}), "match": {"nir": "patients.n"}}, "must be a column mapped from the identity"),
    ({**_one({"n": "last_name"}), "locate": {"email": "patients.n"}},
     "column 'n', [locate] email must be a column mapped from the field 'email'"),
    ({**_one({"n": "last_name"}), "schema": 3}, "schema must be a name"),
    ({"table": [{"name": "t", "key": "k", "columns": {"k": {"const": 1}}},
                {"name": "u", "key": "k", "columns": {"k": {"ref": "t.nope"}}}]},
     "table 'u', column 'k', ref 't.nope': table 't' maps no column 'nope'"),
])
def test_mapping_errors(data, expected):
    assert expected in _error(data)


def test_file_errors(tmp_path):
    with pytest.raises(MappingError, match="mapping file .*absent.toml not found"):
        load_mapping(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[table]]\nname = \"t\"\nname = \"u\"\n", encoding="utf-8")
    with pytest.raises(MappingError, match=r"bad.toml: not valid TOML: .*line 3"):
        load_mapping(bad)


def test_value_errors_at_render_name_the_column():
    data = _one({"sexe": {"field": "sex", "map": {"F": "F"}}})
    mapping = parse_mapping(data, "m.toml")
    with pytest.raises(MappingError, match="m.toml: table 'patients', column 'sexe', map has no entry for 'M'"):
        mapping.rows(make_identity(2), NOW)  # identity 2 is a man
    data = _one({"tel": {"field": "phone", "phone": "spaced"}})
    with pytest.raises(MappingError, match="column 'tel', phone = \"spaced\" needs a French number"):
        parse_mapping(data, "m.toml").rows(make_identity(1, phone="+441632960961"), NOW)


def test_locate_defaults_to_the_match_nir_column():
    data = {**_one({"n": "nir"}), "match": {"nir": "patients.n"}}
    mapping = parse_mapping(data, "m.toml")
    assert [(r.alias, r.column) for r in mapping.locate] == [("patients", "n")]
    assert parse_mapping(_one({"n": "nir"}), "m.toml").locate == ()


def test_the_documented_full_example_parses():
    import re
    import tomllib
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs" / "seeders.md").read_text(encoding="utf-8")
    example = re.search(r"### Full example\s+```toml\n(.*?)```", text, re.S).group(1)
    mapping = parse_mapping(tomllib.loads(example), "docs")
    assert [t.alias for t in mapping.tables] == ["patients", "contact_email", "contact_tel"]
    patients, email, tel = mapping.rows(make_identity(1, phone="+33612345678"), NOW)
    assert patients.values["tel"] == "06 12 34 56 78" and tel.values["valeur"] == "06.12.34.56.78"
    assert email.refs["patient_id"] == Ref("patients", "id")


def test_every_mapping_key_is_documented():
    from pathlib import Path

    from seeders.sql.columns import FILL_KINDS, SITE_KINDS
    from seeders.sql.mapping import _COLUMN_KEYS, _TABLE_KEYS, _TOP_KEYS
    from seeders.sql.related import AT_KINDS, RELATED_KEYS

    text = (Path(__file__).resolve().parents[3] / "docs" / "seeders.md").read_text(encoding="utf-8")
    keys = set(_TOP_KEYS) - {"table", "related"} | _TABLE_KEYS - {"columns"} | RELATED_KEYS
    keys |= {k for ks in _COLUMN_KEYS.values() for k in ks} | set(_COLUMN_KEYS)
    missing = sorted(k for k in keys if f"`{k}" not in text and f"`[{k}]`" not in text)
    missing += [f"[[{t}]]" for t in ("table", "related") if f"`[[{t}]]`" not in text]
    missing += [k for k in (*SITE_KINDS, *FILL_KINDS, *AT_KINDS) if f'"{k}"' not in text]
    assert missing == []
