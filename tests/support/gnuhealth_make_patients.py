"""Register patients through GNU Health's own code (proteus, the Tryton ORM), as the front desk does.

Run by tests/support/gnuhealth_real.py with the python of a GNU Health virtual
environment (5.0: trytond 7.0, proteus 7.0; 4.4: trytond 6.0, proteus 6.0);
it imports nothing from the project. Every row comes from the application's
create()/write(), so the database then holds what GNU Health writes::

    python gnuhealth_make_patients.py TRYTOND_CONF DBNAME COUNT SEED [--setup-site] [--no-fed-country]
        [--usual-name] [--edit-patient-every N]

One patient is one save of the party form (Party > Parties, Person and Patient
ticked): given and family name, gender, birth date, the NIR as an alternative
ID, the form's default address filled in, a landline, a mobile and an e-mail.
The values sent are those of the GNU Health GTK client for a new record
(gnuhealth-client record.py Record.get: every non-readonly field of the loaded
views; field.py: empty Char as '', Boolean as False).

--setup-site    what a hospital configures first: the company (the
                institution), the admin user's current company, and, unless
                --no-fed-country, the federation country (France).
--usual-name    married women get their married name as a usual name, in a
                second save (Party.create replaces the person names sent with
                the creation).
--edit-patient-every N  every Nth patient then gets blood group, Rh and sex in
                the patient form (a write).

Prints a JSON document: the party and patient ids created.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
from decimal import Decimal

from proteus import Model, config as proteus_config

MALE = ("Jean", "Pierre", "Louis", "Hugo", "Loïc", "François", "Gaël", "Yann")
FEMALE = ("Marie", "Léa", "Chloé", "Inès", "Maëlle", "Océane", "Hélène", "Gwenaëlle")
FAMILY = ("Martin", "Lefèvre", "Le Gall", "Quéré", "Rivière", "Tanguy", "Morvan", "Dubois")
CITIES = (("35000", "Rennes", "35"), ("35500", "Vitré", "35"), ("29200", "Brest", "29"), ("56000", "Vannes", "56"))
COMPANY = "Centre Hospitalier de Vitré"


def person(rnd: random.Random, index: int) -> dict:
    sex = rnd.choice("mf")
    dob = dt.date(1940, 1, 1) + dt.timedelta(days=rnd.randrange(0, 365 * 60))
    postal, city, dept = rnd.choice(CITIES)
    body = f"{1 if sex == 'm' else 2}{dob:%y%m}{dept}{rnd.randint(1, 300):03d}{index:03d}"
    family = rnd.choice(FAMILY)
    return {
        "sex": sex, "given": rnd.choice(MALE if sex == "m" else FEMALE), "family": family, "dob": dob,
        "married": rnd.choice([f for f in FAMILY if f != family]) if sex == "f" and index % 2 else None,
        "nir": body + f"{97 - int(body) % 97:02d}",
        "street": f"{rnd.randint(1, 90)} rue de Brest" + ("\nAppartement 4" if index % 3 == 0 else ""),
        "postal": postal, "city": city, "dept": dept,
        "phone": "02 99 {:02d} {:02d} {:02d}".format(*(rnd.randint(10, 99) for _ in range(3))),
        "mobile": "06 {:02d} {:02d} {:02d} {:02d}".format(*(rnd.randint(10, 99) for _ in range(4))),
        "email": f"patient{index}.{rnd.randint(100, 999)}@example.fr",
        "blood": rnd.choice((("O", "+"), ("A", "+"), ("B", "-"))),
    }


def view_fields(model: str, types=("tree", "form")) -> dict:
    proxy, context = Model.get(model)._proxy, proteus_config.get_config().context
    fields: dict = {}
    for view_type in types:
        fields.update(proxy.fields_view_get(None, view_type, context)["fields"])
    return fields


def subview_fields(form_fields: dict, name: str) -> dict:
    """Fields of the sub-views the server sends with the party form for one of its one2many fields."""
    fields: dict = {}
    for view in (form_fields.get(name, {}).get("views") or {}).values():
        fields.update(view.get("fields", {}))
    return fields


def as_client_sends(record, fields: dict, skip=()) -> None:
    """'' for empty Char/Text, False for Boolean, None for the rest of the view's writable fields."""
    for name, definition in fields.items():
        if name in skip or name == "id" or definition.get("readonly") or \
                definition["type"] in ("one2many", "many2many"):
            continue
        value = record._values.get(name)
        if definition["type"] in ("char", "text"):
            if not value:
                record._values[name] = ""
        elif definition["type"] == "boolean":
            if value is None:
                record._values[name] = False
        elif name not in record._values:
            record._values[name] = None


def setup_site(fed_country: bool) -> None:
    Currency, Company, Party = Model.get("currency.currency"), Model.get("company.company"), Model.get("party.party")
    found = Currency.find([("code", "=", "EUR")])
    euro = found[0] if found else Currency(name="Euro", code="EUR", symbol="€", rounding=Decimal("0.01"))
    if not found:
        euro.save()
    companies = Company.find([])
    if companies:
        company = companies[0]
    else:
        institution = Party(name=COMPANY)
        institution.save()
        company = Company(party=institution, currency=euro)
        company.save()
    User = Model.get("res.user")
    admin, = User.find([("login", "=", "admin")])
    if company not in admin.companies:
        admin.companies.append(company)
    admin.company = company
    admin.save()
    if fed_country:
        france, = Model.get("country.country").find([("code", "=", "FR")])
        config = Model.get("gnuhealth.federation.country.config")(1)
        config.country = france
        config.save()


def register(who: dict, views: dict, france, subdivisions: dict) -> dict:
    Party = Model.get("party.party")
    party = Party()  # default_get, as the form opens: activation date, federation country, one empty address
    party.name, party.lastname = who["given"], who["family"]
    party.is_person = party.is_patient = True
    party.gender, party.dob = who["sex"], who["dob"]
    party.alternative_identification = True
    alt = party.alternative_ids.new()
    alt.code, alt.alternative_id_type = who["nir"], "country_id"
    address = party.addresses[0] if len(party.addresses) else party.addresses.new()
    address.street, address.postal_code, address.city = who["street"], who["postal"], who["city"]
    address.country = france
    if who["dept"] in subdivisions:
        address.subdivision = subdivisions[who["dept"]]
    for kind in ("phone", "mobile", "email"):
        mechanism = party.contact_mechanisms.new()
        mechanism.type, mechanism.value = kind, who[kind]
    as_client_sends(party, views["party.party"])
    for name in ("addresses", "contact_mechanisms", "alternative_ids"):
        for line in getattr(party, name):
            as_client_sends(line, views[name], skip=("party", "name" if name == "alternative_ids" else ""))
    party.save()
    Patient = Model.get("gnuhealth.patient")
    link = "party" if "party" in Patient._fields else "name"
    patient, = Patient.find([(link, "=", party.id)])
    return {"party": party.id, "patient": patient.id}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    for name in ("config", "database"):
        parser.add_argument(name)
    parser.add_argument("count", type=int)
    parser.add_argument("seed", type=int)
    parser.add_argument("--setup-site", action="store_true")
    parser.add_argument("--no-fed-country", action="store_true")
    parser.add_argument("--usual-name", action="store_true")
    parser.add_argument("--edit-patient-every", type=int, default=0)
    args = parser.parse_args(argv)
    proteus_config.set_trytond(database=args.database, user="admin", config_file=args.config)
    if args.setup_site:
        setup_site(not args.no_fed_country)
        # again: the user's context now carries company and company.rec_name (res/user.py _get_preferences)
        proteus_config.set_trytond(database=args.database, user="admin", config_file=args.config)
    france, = Model.get("country.country").find([("code", "=", "FR")])
    subdivisions = {s.code[3:]: s for s in Model.get("country.subdivision").find(
        [("country", "=", france.id), ("code", "like", "FR-__")])}
    form = view_fields("party.party", ("form",))
    views = {"party.party": view_fields("party.party"),
             **{name: subview_fields(form, name) for name in ("addresses", "contact_mechanisms", "alternative_ids")}}
    rnd = random.Random(args.seed)
    created = []
    for index in range(1, args.count + 1):
        who = person(rnd, index)
        made = register(who, views, france, subdivisions)
        if args.edit_patient_every and index % args.edit_patient_every == 0:
            patient = Model.get("gnuhealth.patient")(made["patient"])
            patient.blood_type, patient.rh = who["blood"]
            patient.biological_sex = who["sex"]
            patient.save()
            made["edited"] = True
        if args.usual_name and who["married"]:
            party = Model.get("party.party")(made["party"])
            name = party.person_names.new()
            name.use, name.given, name.family = "usual", who["given"], who["married"]
            party.save()
            made["usual_name"] = True
        created.append(made)
    print(json.dumps({"patients": created}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
