"""What an alert says when a hospital audit trail shows canary records opened (channel ``access``).

The other alerts say "records of this database are in someone else's hands";
an access alert says who opened them, from where, when and how, and what to
do first: suspend the account, keep the logs, start the GDPR 72-hour clock.
``access_data`` gathers the facts from the incident's hits (their evidence is
the audit event: account, workstation, address, action, audit source);
``meaning``, ``actions`` and ``subject`` word them. Every value is cleaned by
the composer and bodies (it comes from the audit trail, thus from whoever
holds the account).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from canary.alerts.bodies import clean, establishment
from canary.hits.hit import Channel, Classification, Hit

MAX_LISTED = 20  # latest accesses shown in the facts; `canary hits --channel access` has them all


def access_data(hits: Sequence[Hit], iso: Callable[[Any], str | None]) -> dict[str, Any] | None:
    """The access facts of an incident's hits; None when none came from an audit trail."""
    accesses = [h for h in hits if h.channel is Channel.ACCESS]
    if not accesses:
        return None

    def distinct(*keys: str) -> list[str]:
        seen: dict[str, None] = {}
        for hit in accesses:
            for key in keys:
                value = hit.evidence.get(key)
                if isinstance(value, str) and value:
                    seen.setdefault(clean(value, 100))
        return list(seen)

    return {
        "bulk": any(h.classification is Classification.BULK_ACCESS for h in accesses),
        "accounts": distinct("account"),
        "account_names": distinct("account_name"),
        "workstations": distinct("workstation", "address"),
        "audit_sources": distinct("audit_source"),
        "canaries_by_account": max((h.evidence.get("canaries_by_account") or 0 for h in accesses
                                    if isinstance(h.evidence.get("canaries_by_account"), int)), default=0),
        "events": [{"at": iso(h.at), "action": clean(str(h.evidence.get("action") or "?"), 20),
                    "account": clean(str(h.evidence.get("account") or "?"), 100)}
                   for h in accesses[-MAX_LISTED:]],
    }


def _accounts(access: Mapping[str, Any]) -> str:
    return ", ".join(f"« {a} »" for a in access["accounts"]) or "inconnu (unknown)"


def meaning(source_name: str, access: Mapping[str, Any]) -> str:
    who = _accounts(access)
    if access["bulk"]:
        many = access["canaries_by_account"]
        count = f"{many} dossiers de patients fictifs" if many > 1 else "des dossiers de patients fictifs"
        return (f"Le compte {who} a ouvert {count} de la base « {source_name} » en peu de temps, ou les a "
                "exportés, imprimés ou obtenus par une recherche de masse. Personne n'a de raison d'ouvrir "
                "ces dossiers : c'est le signe d'un compte volé ou d'une extraction en cours, et les "
                "dossiers réels consultés par ce compte sont à considérer comme emportés. "
                "Bulk access to canary records: a stolen account or an exfiltration in progress.")
    return (f"Le dossier d'un patient fictif de la base « {source_name} » a été ouvert par le compte "
            f"{who}. Ce patient n'existe pas et n'est le patient de personne : aucune raison de soins ne "
            "justifie cet accès. Curiosité d'un collègue, ou premier pas d'un vol de données. "
            "Unjustified access to a canary record: nobody's patient was opened.")


def actions(source_name: str, access: Mapping[str, Any], cnil: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What to do first, in order; ``cnil`` is the composer's art. 33 action (text, url, deadline)."""
    who = _accounts(access)
    where = ", ".join(access["workstations"]) or "—"
    suspend = (f"Suspendre maintenant le compte {who} (fermer ses sessions, changer son mot de passe), "
               "puis demander à son titulaire s'il est à l'origine de ces accès."
               if access["bulk"] else
               f"Demander au titulaire du compte {who} (poste {where}) la raison de cet accès ; sans "
               "réponse claire, suspendre le compte.")
    return [
        {"text": suspend},
        {"text": f"Conserver les journaux : exporter dès maintenant la piste d'audit de « {source_name} » "
                 f"pour ce compte et les journaux réseau/VPN du poste {where} ; ne pas retirer ce canari. "
                 f"Historique : `canary hits --channel access --source {source_name}`."},
        {"text": f"Lister les dossiers réels ouverts par ce compte sur la même période : ce sont eux qui "
                 "ont pu être consultés ou emportés."},
        dict(cnil, text="Si des dossiers réels ont été consultés sans droit, c'est une violation de "
                        "données : " + cnil["text"]),
    ]


def subject(source: Mapping[str, Any], canary_id: Any, access: Mapping[str, Any], follow_up: bool) -> str:
    head = "Accès en masse" if access["bulk"] else "Accès injustifié"
    if follow_up:
        head = f"Aggravation, {head.lower()}"
    return (f"[CANARY] {head} : base « {source['name']} »{establishment(source)} — compte "
            f"{_accounts(access)}, canari #{canary_id}")
