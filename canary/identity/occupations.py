"""An occupation as front-desk staff type it in a patient's record ("Profession" of the demographics).

For records whose site fills the field with free text: a plausible occupation for the patient's age and
sex. Working ages draw from broad trades weighted roughly like the employed population of France (INSEE,
emploi par catégorie socioprofessionnelle: employees and intermediate professions first, then workers,
managers, craftsmen, farmers); children are pupils, young adults often students, most people over 62
retired. Feminine forms for women, as staff write them.
"""

from __future__ import annotations

import random

from canary.identity.sampling import pick, weighted

# (masculine, feminine, weight)
_WORKING = weighted([(pair[:2], pair[2]) for pair in (
    ("Employé", "Employée", 9), ("Employé de bureau", "Employée de bureau", 4), ("Secrétaire", "Secrétaire", 3),
    ("Vendeur", "Vendeuse", 4), ("Caissier", "Caissière", 2), ("Aide-soignant", "Aide-soignante", 3),
    ("Infirmier", "Infirmière", 3), ("Enseignant", "Enseignante", 4),
    ("Professeur des écoles", "Professeur des écoles", 2),
    ("Agent d'entretien", "Agent d'entretien", 3), ("Assistante maternelle", "Assistante maternelle", 1),
    ("Comptable", "Comptable", 2), ("Technicien", "Technicienne", 4), ("Commercial", "Commerciale", 3),
    ("Cadre", "Cadre", 5), ("Ingénieur", "Ingénieure", 4), ("Fonctionnaire", "Fonctionnaire", 3),
    ("Ouvrier", "Ouvrière", 6), ("Chauffeur", "Chauffeur", 3), ("Magasinier", "Magasinière", 2),
    ("Maçon", "Maçon", 1), ("Électricien", "Électricienne", 1), ("Cuisinier", "Cuisinière", 2),
    ("Serveur", "Serveuse", 1), ("Agent de sécurité", "Agent de sécurité", 1), ("Artisan", "Artisane", 2),
    ("Commerçant", "Commerçante", 2), ("Agriculteur", "Agricultrice", 1), ("Informaticien", "Informaticienne", 2),
    ("Sans emploi", "Sans emploi", 4), ("Au foyer", "Au foyer", 1), ("Intérimaire", "Intérimaire", 1),
)])
_PUPILS = ((10, ("Écolier", "Écolière")), (14, ("Collégien", "Collégienne")), (17, ("Lycéen", "Lycéenne")))
_STUDENT = ("Étudiant", "Étudiante")
_RETIRED = ("Retraité", "Retraitée")


def occupation(rng: random.Random, age: int, female: bool) -> str:
    """An occupation for a patient of ``age``; '' for the under-sixes (staff leave it empty)."""
    if age < 6:
        return ""
    if age <= 17:
        forms = next(f for limit, f in _PUPILS if age <= limit)
    elif age <= 24 and rng.random() < (0.75 if age <= 21 else 0.35):
        forms = _STUDENT
    elif age >= 67 or (age >= 60 and rng.random() < (age - 59) / 8):
        forms = _RETIRED
    else:
        forms = pick(rng, _WORKING)
    return forms[1] if female else forms[0]
