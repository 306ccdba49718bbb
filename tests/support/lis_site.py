"""A realistic laboratory site on the test LIS schema (tests/fixtures/lis_schema.sql).

Its own population generator, written apart from canary/identity on purpose:
the separability audit must be tested against patients that were *not* made
by the code that makes canaries. What it imitates is what a LIS holds after
years of use, the way its application writes it:

- registrations over ``years`` on working days, at office hours, whole
  seconds (the application's precision), more of them recently;
- names and writings with the habits of the desk: surnames in capitals,
  ``adresse2`` NULL or '' depending on the agent, doctor and origin from a
  pick list, blood group often unknown;
- a catchment: most patients from a few postcodes around the lab;
- phones: mobiles spread over the whole numbering plan (two patients rarely
  share a 10,000-number block), landlines for many older patients;
- emails at the common providers, some missing (more among the old), a few
  personal domains held by one family;
- clinical activity: a geometric number of analyses per patient, the first
  taken on the registration day, later ones spread over the following years;
  a portal account for 18 % of them, created days after the registration;
- ``modifie_le`` (text) set when the record was edited later, NULL otherwise.

``build_site(url, patients)`` creates the schema and fills it (bulk inserts:
100,000 patients take about a minute on SQLite).
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa

from support.sql_seeder_helpers import create_schema

SURNAMES = ["MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU",
            "LAURENT", "SIMON", "MICHEL", "LEFEBVRE", "LEROY", "ROUX", "DAVID", "BERTRAND", "MOREL",
            "FOURNIER", "GIRARD", "BONNET", "DUPONT", "LAMBERT", "FONTAINE", "ROUSSEAU", "VINCENT",
            "MULLER", "LEFEVRE", "FAURE", "ANDRE", "MERCIER", "BLANC", "GUERIN", "BOYER", "GARNIER",
            "CHEVALIER", "FRANCOIS", "LEGRAND", "GAUTHIER", "GARCIA", "PERRIN", "ROBIN", "CLEMENT",
            "MORIN", "NICOLAS", "HENRY", "ROUSSEL", "MATHIEU", "GAUTIER", "MASSON", "LE GOFF", "LE GALL",
            "TANGUY", "GUILLOU", "HAMON", "LE ROUX", "JEGOU", "RIOU", "COLLET", "NGUYEN", "DA SILVA"]
WOMEN = ["Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Françoise", "Monique", "Sandrine",
         "Christine", "Valérie", "Emma", "Léa", "Chloé", "Camille", "Manon", "Jeanne", "Anne", "Louise",
         "Céline", "Aurélie", "Julie", "Sophie", "Martine", "Nicole", "Jacqueline", "Inès", "Zoé"]
MEN = ["Jean", "Pierre", "Michel", "Philippe", "Alain", "Nicolas", "Christophe", "Patrick", "Daniel",
       "Bernard", "Éric", "Thomas", "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Jules", "Paul",
       "Julien", "Sébastien", "Laurent", "Stéphane", "Yann", "Erwan", "Gérard", "Noah", "Théo"]
# Postcodes of the lab's catchment, with their weight (Rennes and around).
CATCHMENT = [("35000", "RENNES", 30), ("35200", "RENNES", 18), ("35700", "RENNES", 14),
             ("35510", "CESSON-SEVIGNE", 7), ("35136", "SAINT-JACQUES-DE-LA-LANDE", 5),
             ("35135", "CHANTEPIE", 4), ("35740", "PACE", 3), ("35760", "SAINT-GREGOIRE", 4),
             ("35650", "LE RHEU", 3), ("35830", "BETTON", 3), ("35230", "NOYAL-CHATILLON-SUR-SEICHE", 2),
             ("35310", "MORDELLES", 2), ("35590", "L'HERMITAGE", 2), ("35170", "BRUZ", 4)]
STREETS = ["rue de Nantes", "boulevard de la Liberté", "avenue Janvier", "rue de Fougères", "rue Saint-Malo",
           "rue d'Antrain", "avenue du Général Leclerc", "rue de Brest", "allée des Peupliers",
           "rue Jean Jaurès", "place Sainte-Anne", "rue de Châteaugiron", "impasse des Lilas"]
PROVIDERS = [("gmail.com", 40), ("orange.fr", 14), ("hotmail.fr", 10), ("yahoo.fr", 6), ("free.fr", 6),
             ("wanadoo.fr", 5), ("laposte.net", 4), ("sfr.fr", 3), ("outlook.fr", 4), ("icloud.com", 3),
             ("hotmail.com", 3), ("bbox.fr", 2)]
DOCTORS = ["DR LE BIHAN ANNE", "DR MOREAU CLAIRE", "DR KERVELLA YVES", "DR PRIGENT MARC", "DR GUYOMARD LISE",
           "DR HUET PAUL", "DR CADIOU ODILE", "DR LE MEUR ALAIN"]
ORIGINS = [("ADM", 62), ("URG", 24), ("CS", 10), ("EXT", 4)]
CODES = ["NFS", "IONO", "GLY", "CRP", "TSH", "BILIP", "CREAT", "HBA1C", "TP", "FERR"]
BLOOD = ["A+", "O+", "B+", "AB+", "A-", "O-", "B-", "AB-"]


def _weighted(rng: random.Random, pairs):
    total = sum(pair[-1] for pair in pairs)
    roll = rng.random() * total
    for pair in pairs:
        roll -= pair[-1]
        if roll <= 0:
            return pair
    return pairs[-1]


def _working_moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A moment on a weekday, 7:30-18:30, skewed toward ``end`` (a growing activity)."""
    span = (end - start).days
    while True:
        day = start.date() + timedelta(days=int(span * math.sqrt(rng.random())))
        if day.weekday() < 5:
            break
    seconds = int(rng.triangular(7.5 * 3600, 18.5 * 3600, 10 * 3600))
    return datetime.combine(day, time()) + timedelta(seconds=seconds)


def _mobile(rng: random.Random) -> str:
    return "0" + rng.choice("67") + "".join(str(rng.randrange(10)) for _ in range(8))


def _landline(rng: random.Random) -> str:
    return "02" + rng.choice(["99", "23", "90", "56"]) + "".join(str(rng.randrange(10)) for _ in range(6))


def _spaced(number: str) -> str:
    return " ".join(number[i:i + 2] for i in range(0, 10, 2))


def _slug(text: str) -> str:
    table = str.maketrans("éèêëàâîïôöûüçÉÈ' ", "eeeeaaiioouucEE--")
    return text.translate(table).lower().replace("--", "-")


def make_patients(count: int, *, now: datetime, years: int = 5, seed: int = 1):
    """Rows (patients, contacts, portail, analyses) for ``count`` patients, ids from 1."""
    rng = random.Random(seed)
    start = now - timedelta(days=365 * years)
    moments = sorted(_working_moment(rng, start, now - timedelta(days=1)) for _ in range(count))
    family_domains = [f"{_slug(rng.choice(SURNAMES))}-famille{n}.fr" for n in range(count // 40 + 1)]
    patients, contacts, accounts, analyses = [], [], [], []
    ipp = 100000
    for n, created in enumerate(moments, 1):
        female = rng.random() < 0.54
        first = rng.choice(WOMEN if female else MEN)
        second = rng.choice(WOMEN if female else MEN) if rng.random() < 0.6 else None
        surname = rng.choice(SURNAMES)
        birth_name = rng.choice(SURNAMES) if female and rng.random() < 0.4 else surname
        age = min(99, max(0, int(rng.gauss(52, 22))))
        born = date(now.year - age, 1, 1) + timedelta(days=rng.randrange(365))
        postcode, city, _w = _weighted(rng, CATCHMENT)
        old = age >= 70
        phone = _landline(rng) if old and rng.random() < 0.4 else _mobile(rng)
        agent_blank = rng.random() < 0.3  # some agents leave '' where others leave NULL
        edited = rng.random() < 0.6
        ipp += rng.randrange(1, 4)
        patients.append(dict(
            id=n, ipp=ipp, nom=surname, nom_naissance=birth_name if rng.random() < 0.9 else None,
            prenom=first, prenoms=" ".join(x for x in (first, second) if x), prenom2=second,
            sexe="F" if female else "H", date_naissance=born, naissance_txt=f"{born:%d/%m/%Y}",
            lieu_naissance=None if rng.random() < 0.3 else f"35{rng.randrange(1, 360):03d}",
            nir=None if rng.random() < 0.15 else
            f"{2 if female else 1}{born:%y%m}35{rng.randrange(1, 360):03d}{rng.randrange(1, 999):03d}"
            f"{rng.randrange(1, 98):02d}",
            adresse1=f"{rng.randrange(1, 120)} {rng.choice(STREETS)}",
            adresse2=(("" if agent_blank else None) if rng.random() < 0.85 else f"Apt {rng.randrange(1, 80)}"),
            code_postal=postcode, ville=city,
            tel=None if rng.random() < 0.05 else _spaced(phone),
            medecin=rng.choice(DOCTORS) if rng.random() < 0.9 else None,
            rpps=None if rng.random() < 0.5 else f"10{rng.randrange(10 ** 8, 10 ** 9)}",
            groupe_sanguin=rng.choice(BLOOD) if rng.random() < 0.45 else None,
            traitements=None if rng.random() < 0.7 else ("" if agent_blank else "levothyrox 50"),
            origine=_weighted(rng, ORIGINS)[0], cree_le=created,
            modifie_le=f"{created + timedelta(minutes=rng.expovariate(1 / 4000)):%Y-%m-%d %H:%M:%S}"
            if edited else None,
        ))
        if phone:
            contacts.append(dict(patient_id=n, type="TEL", valeur=".".join(_spaced(phone).split()),
                                 uuid=f"00000000-0000-4000-8000-{n:012d}"))
        if rng.random() < (0.35 if old else 0.8):
            if rng.random() < 0.05:
                domain = rng.choice(family_domains)
            else:
                domain = _weighted(rng, PROVIDERS)[0]
            contacts.append(dict(patient_id=n, type="EMAIL", valeur=f"{_slug(first)}.{_slug(surname)}{n}@{domain}",
                                 uuid=f"00000000-0000-4000-9000-{n:012d}"))
        if rng.random() < 0.18:
            accounts.append(dict(jeton=f"{n:032x}", patient_id=n, login=f"p{ipp}", secret="x" * 20,
                                 lien=f"https://portail.labo.fr/acces/{n:08x}", actif=1))
        visits = 1 + int(rng.expovariate(1 / 2.5))
        day = created.date()
        for visit in range(visits):
            if visit:
                day = day + timedelta(days=int(rng.expovariate(1 / 200)) + 1)
            if day > now.date():
                break
            for code in rng.sample(CODES, rng.randrange(1, 4)):
                analyses.append(dict(patient_id=n, code=code, resultat=f"{rng.uniform(0.5, 12):.1f}",
                                     prelevement=day))
    return patients, contacts, accounts, analyses


def build_site(url: str, patients: int, *, now: datetime | None = None, seed: int = 1, years: int = 5) -> None:
    """Create the test LIS schema at ``url`` and fill it with a realistic site (``now``: naive local time)."""
    now = (now or datetime.now()).replace(microsecond=0)
    create_schema(url)
    rows = make_patients(patients, now=now, seed=seed, years=years)
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    try:
        with engine.begin() as conn:
            for table, batch in zip(("patients", "contacts", "portail", "analyses"), rows):
                for chunk in range(0, len(batch), 20000):
                    conn.execute(md.tables[table].insert(), batch[chunk:chunk + 20000])
        if engine.dialect.name == "postgresql":  # explicit ids: move the serial past them
            with engine.begin() as conn:
                conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('patients', 'id'), {patients})")
    finally:
        engine.dispose()
