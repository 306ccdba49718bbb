"""Alert content: what happened, what it means, what to do, and every hit so far.

French text for the team that acts on it, with English field labels. One
structured ``data`` dict is built first; the plain text and the HTML bodies
are both rendered from it. Everything that comes from outside (evidence,
remote addresses) is attacker-controlled: control and bidi characters are
replaced in text, everything is escaped in HTML, secrets-looking evidence keys
are masked, and lists are capped. Full identities stay in the registry: an
alert names the source database and the canary's id and fake name only.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Sequence

from canary.alerts import access as access_text
from canary.alerts.access import access_data
from canary.alerts.bodies import CLASS_LABELS, Bodies, clean, escape, establishment
from canary.alerts.config import Links
from canary.alerts.message import Alert, level, severity
from canary.hits.hit import Channel, Classification, Hit
from canary.model import SourceSpec
from canary.registry.hitrecords import AlertKind, AlertRecord, IncidentView, SinkHealth
from canary.registry.records import CanaryRecord

CNIL_DELAY = timedelta(hours=72)
MAX_LISTED_HITS = 100  # the first hit and the latest ones; `canary hits` has them all
MAX_EVIDENCE_KEYS = 20
MAX_EVIDENCE_VALUE = 300
SECRET_KEYS = ("password", "passwd", "pwd", "secret", "authorization", "cookie")

CHANNEL_LABELS = {
    Channel.DNS: "DNS", Channel.HTTP: "lien web", Channel.SMTP: "email", Channel.SMS: "SMS",
    Channel.VOICE: "appel", Channel.BREACH: "fuite publiée", Channel.VERIFY: "vérification",
    Channel.ACCESS: "dossier ouvert",
}


class Composer:
    """Builds Alerts from registry views; pure apart from reading the clock it is given."""

    def __init__(self, links: Links, *, tz: str = "Europe/Paris") -> None:
        self.links = links
        self.bodies = Bodies(tz)

    # -- messages about incidents ------------------------------------------------
    def incident(self, kind: AlertKind, view: IncidentView, now: datetime) -> Alert:
        incident, hits = view.incident, view.hits
        new = view.new_hits or hits[-1:]
        highest = max((severity(h.classification) for h in hits), default=-1)
        trigger = max(new, key=lambda h: (severity(h.classification), -h.id)) if new else None
        source = _source_data(view.source, incident.source)
        data: dict[str, Any] = {
            "type": "canary.alert", "kind": kind.value, "level": level(highest),
            "source": source,
            "canary": _canary_data(view.canary, incident.canary_id),
            "incident": {
                "id": incident.id, "opened_at": _iso(incident.opened_at),
                "closes_at": _iso(incident.closes_at), "hit_count": len(hits),
                "counts": dict(Counter(h.classification.value for h in hits)),
                "new_hits": len(view.new_hits),
            },
            "trigger": _hit_data(trigger) if trigger else None,
            "hits": [_hit_data(h) for h in _listed(hits)],
            "hits_omitted": max(0, len(hits) - MAX_LISTED_HITS),
            "new_hit_ids": [h.id for h in view.new_hits],
            "created_at": _iso(now),
        }
        leak = highest >= severity(Classification.AUTOMATED)
        if leak:
            data["deadline"] = {"cnil_art33": _iso(incident.opened_at + CNIL_DELAY)}
        data["meaning"] = _meaning(source["name"], view.canary, leak)
        data["actions"] = self._actions(source["name"], incident.opened_at) if leak else []
        subject = _subject(kind, source, data["canary"], trigger, incident.id, len(view.new_hits), leak)
        access = access_data(hits, _iso)
        if access is not None:  # a hospital audit trail: say who opened it and what to do first
            data["access"] = access
            data["meaning"] = access_text.meaning(source["name"], access)
            data["actions"] = access_text.actions(source["name"], access, data["actions"][0])
            if kind is not AlertKind.DIGEST:
                subject = _line(access_text.subject(source, data["canary"]["id"], access,
                                                    kind is AlertKind.FOLLOW_UP))
        return self._alert(kind, subject, data, recipients=_recipients(view.source))

    def summary(self, source_name: str, spec: SourceSpec | None, held: Sequence[AlertRecord],
                views: Sequence[IncidentView], now: datetime, cap: int) -> Alert:
        """What flood control held back for one source, in one message."""
        all_hits = [h for v in views for h in v.hits]
        highest = max((severity(h.classification) for h in all_hits), default=-1)
        leak = highest >= severity(Classification.AUTOMATED)
        source = _source_data(spec, source_name)
        new_count = sum(len(v.new_hits) for v in views)
        data: dict[str, Any] = {
            "type": "canary.alert", "kind": AlertKind.SUMMARY.value, "level": level(highest),
            "source": source, "cap_per_hour": cap,
            "held": [{"id": a.id, "kind": a.kind.value, "created_at": _iso(a.created_at),
                      "subject": a.subject} for a in held],
            "incidents": [{
                "id": v.incident.id, "canary": _canary_data(v.canary, v.incident.canary_id),
                "opened_at": _iso(v.incident.opened_at), "hit_count": len(v.hits),
                "new_hits": len(v.new_hits),
                "counts": dict(Counter(h.classification.value for h in v.hits)),
                "hits": [_hit_data(h) for h in _listed(v.new_hits)],
            } for v in views],
            "created_at": _iso(now),
        }
        if leak and views:
            first = min(v.incident.opened_at for v in views)
            data["deadline"] = {"cnil_art33": _iso(first + CNIL_DELAY)}
            data["actions"] = self._actions(source["name"], first)
        else:
            data["actions"] = []
        data["meaning"] = (
            f"Limite de {cap} messages par heure atteinte pour la base « {source['name']} » : "
            f"{len(held)} message(s) retenu(s), {new_count} accès nouveau(x) sur "
            f"{len(views)} canari(s) réunis ici. Nothing was dropped: this is what the hourly cap held back."
        )
        subject = _line(f"[CANARY] Résumé (limite {cap}/h) : base « {source['name']} »"
                        f"{establishment(source)} — {new_count} accès sur {len(views)} canari(s)")
        return self._alert(AlertKind.SUMMARY, subject, data, recipients=_recipients(spec))

    def plain(self, kind: AlertKind, view: IncidentView, now: datetime) -> Alert:
        """A bare message for when ``incident`` fails: the key facts, nothing fancy."""
        incident = view.incident
        lines = [f"#{h.id} {h.at.isoformat()} {h.channel.value} {h.classification.value} "
                 f"{clean(h.remote or '-', 64)}" for h in view.hits[-MAX_LISTED_HITS:]]
        subject = clean(f"[CANARY] Alerte : base « {incident.source} » — canari #{incident.canary_id}, "
                        f"incident #{incident.id} ({kind.value})", 250)
        text = "\n".join([subject, "", "Détails : `canary hits --source "
                          f"{clean(incident.source, 100)}`.", "", *lines]) + "\n"
        data = {"type": "canary.alert", "kind": kind.value, "level": "high", "subject": subject,
                "incident": {"id": incident.id, "hit_count": len(view.hits)},
                "created_at": _iso(now), "plain": True}
        return Alert(kind=kind, level="high", subject=subject, text=text,
                     html="<pre>" + escape(text) + "</pre>", created_at=now,
                     recipients=_recipients(view.source), data=data)

    # -- messages about the system -------------------------------------------------
    def sink_failing(self, health: SinkHealth, now: datetime) -> Alert:
        data = {
            "type": "canary.notice", "kind": AlertKind.NOTICE.value, "level": "high",
            "sink": health.sink, "failures": health.consecutive_failures,
            "failing_since": _iso(health.failing_since), "last_error": health.last_error,
            "created_at": _iso(now),
            "meaning": (f"Le canal d'alerte « {health.sink} » échoue "
                        f"{health.consecutive_failures} fois de suite : ses alertes attendent "
                        "dans la file et seront renvoyées dès qu'il répondra (retried forever)."),
            "actions": [{"text": "Vérifier la configuration [alerts." + health.sink
                         + "] et le serveur distant ; état : `canary alerts`."}],
        }
        subject = _line(f"[CANARY] Canal d'alerte en panne : {health.sink} "
                        f"({health.consecutive_failures} échecs)")
        return self._alert(AlertKind.NOTICE, subject, data)

    def test(self, now: datetime) -> Alert:
        data = {
            "type": "canary.test", "kind": AlertKind.TEST.value, "level": "info",
            "created_at": _iso(now),
            "meaning": "Message de test envoyé par `canary alerts test` : aucun canari n'a été touché. "
                       "Test message: no canary was hit.",
            "actions": [],
        }
        return self._alert(AlertKind.TEST, "[CANARY] Test d'alerte — aucune action requise", data)

    # -- pieces ------------------------------------------------------------------
    def _actions(self, source_name: str, aware_at: datetime) -> list[dict[str, Any]]:
        deadline = aware_at + CNIL_DELAY
        return [
            {"text": "Notifier la CNIL (RGPD art. 33) dans les 72 h suivant la prise de connaissance : "
                     f"avant le {self.bodies.when(deadline)}.",
             "url": self.links.cnil, "deadline": _iso(deadline)},
            {"text": "Établissement de santé : signaler l'incident de sécurité des systèmes "
                     "d'information (CERT Santé, via le portail de signalement).",
             "url": self.links.cert_sante},
            {"text": "Si la fuite présente un risque élevé pour les patients, les informer "
                     "(RGPD art. 34).", "url": self.links.art34},
            {"text": f"Conserver les preuves : ne pas retirer ce canari ; historique complet : "
                     f"`canary hits --source {source_name}`. Chercher le chemin de fuite (exports, "
                     "sauvegardes, comptes de service, prestataires ayant accès à cette base)."},
        ]

    def _alert(self, kind: AlertKind, subject: str, data: dict[str, Any],
               recipients: tuple[str, ...] = ()) -> Alert:
        data["subject"] = subject
        data["facts"] = [list(fact) for fact in self.bodies.facts(data)]
        now = datetime.fromisoformat(data["created_at"])
        return Alert(kind=kind, level=data["level"], subject=subject, text=self.bodies.text(data),
                     html=self.bodies.html(data), created_at=now, recipients=recipients, data=data)

# -- data pieces ---------------------------------------------------------------------


def _source_data(spec: SourceSpec | None, name: str) -> dict[str, Any]:
    return {
        "name": clean(spec.name if spec else name, 100),
        "kind": spec.seeder if spec else None,
        "establishment": clean(spec.establishment, 200) if spec and spec.establishment else None,
        "tenant": clean(spec.tenant, 200) if spec and spec.tenant else None,
        "removed": spec is None,
    }


def _canary_data(canary: CanaryRecord | None, canary_id: int | None) -> dict[str, Any]:
    if canary is None:
        return {"id": canary_id, "name": None, "status": None, "planted_at": None, "batch": None}
    who = canary.identity
    return {
        "id": canary.id,
        "name": f"{who.civility} {who.first_name} {who.last_name}",
        "status": canary.status.value,
        "created_at": _iso(canary.created_at),
        "planted_at": _iso(canary.planted_at),
        "batch": canary.batch,
    }


def _hit_data(hit: Hit) -> dict[str, Any]:
    return {
        "id": hit.id, "at": _iso(hit.at), "channel": hit.channel.value,
        "channel_label": _trigger_label(hit), "kind": hit.kind.value, "remote": clean(hit.remote or "", 64) or None,
        "classification": hit.classification.value,
        "classification_label": CLASS_LABELS[hit.classification],
        "evidence": _evidence(hit.evidence, hit.value),
    }


def _evidence(evidence: Mapping[str, Any], token: str = "") -> dict[str, str]:
    """Evidence for display: secrets masked, the canary's own token value too (it stays in
    the registry, with the identity), control characters escaped, capped."""
    hide = re.compile(re.escape(token), re.IGNORECASE) if len(token) >= 4 else None
    out: dict[str, str] = {}
    for key, value in list(evidence.items())[:MAX_EVIDENCE_KEYS]:
        key = clean(str(key), 64)
        if any(secret in key.lower() for secret in SECRET_KEYS):
            out[key] = "***"
            continue
        if not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False, default=str)
        if hide is not None:
            value = hide.sub("[jeton]", value)
        out[key] = clean(value, MAX_EVIDENCE_VALUE)
    if len(evidence) > MAX_EVIDENCE_KEYS:
        out["…"] = f"{len(evidence) - MAX_EVIDENCE_KEYS} more"
    return out


def _listed(hits: Sequence[Hit]) -> list[Hit]:
    if len(hits) <= MAX_LISTED_HITS:
        return list(hits)
    return [hits[0], *hits[-(MAX_LISTED_HITS - 1):]]


def _meaning(source_name: str, canary: CanaryRecord | None, leak: bool) -> str:
    since = f"au moins depuis le {canary.planted_at:%Y-%m-%d}, date où le canari y a été déposé" \
        if canary is not None and canary.planted_at else "au moins depuis le dépôt du canari"
    if not leak:
        return (f"Accès venant des réseaux ou passerelles de l'établissement (rappels, re-vérifications) "
                f"vers un patient fictif de la base « {source_name} ». Ils n'indiquent pas à eux seuls une "
                "fuite ; ils sont signalés pour que rien ne soit passé sous silence. "
                "Internal traffic only: no leak is indicated by these hits alone.")
    return (f"Ce patient n'existe pas : il n'a été inscrit que dans la base « {source_name} ». "
            f"Quelqu'un utilise ses coordonnées, donc des enregistrements de cette base sont entre "
            f"d'autres mains, {since}. Records of this database are in someone else's hands.")


def _subject(kind: AlertKind, source: Mapping[str, Any], canary: Mapping[str, Any],
             trigger: Hit | None, incident_id: int, new_count: int, leak: bool) -> str:
    where = f"base « {source['name']} »{establishment(source)}"
    what = _trigger_label(trigger)
    if kind is AlertKind.NEW:
        head = "Identifiants utilisés" if trigger and trigger.classification is \
            Classification.CREDENTIAL_USE else "Fuite probable"
        return _line(f"[CANARY] {head} : {where} — canari #{canary['id']}, {what}")
    if kind is AlertKind.FOLLOW_UP:
        return _line(f"[CANARY] Aggravation : {where} — canari #{canary['id']}, {what} "
                     f"(incident #{incident_id})")
    head = "Suivi" if leak else "Info, trafic interne"
    return _line(f"[CANARY] {head} : {where} — canari #{canary['id']}, {new_count} nouvel(s) accès "
                 f"(incident #{incident_id})")


def _trigger_label(hit: Hit | None) -> str:
    if hit is None:
        return "accès"
    if hit.classification is Classification.CREDENTIAL_USE:
        return "connexion au portail"
    return CHANNEL_LABELS.get(hit.channel, hit.channel.value)




def _recipients(spec: SourceSpec | None) -> tuple[str, ...]:
    return tuple(a for a in (spec.alert_to if spec else ()) if "@" in a)




def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value is not None else None




def _line(text: str) -> str:
    return clean(" ".join(text.split()), 250)

