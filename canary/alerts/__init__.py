"""Alerting: hits -> incidents -> messages -> outbox -> sinks (docs/alerts.md).

    config.py    the [alerts] tables (AlertsConfig, SETTINGS)
    policy.py    when a hit becomes a message (Alerter: incidents, digests, flood control)
    compose.py   what a message says (Composer -> Alert)
    message.py   Alert, DeliveryError, severities
    formats.py   wire formats: JSON, Slack, Teams, Mattermost, RFC 5424
    sinks.py     email, webhook, syslog transports
    outbox.py    the delivery worker (retry, backoff, exactly once)
    service.py   wiring, and the library behind `canary hits` / `canary alerts`

Nothing is imported here: ``from canary.alerts.service import build_alerting``;
settings are declared in ``canary.alerts.config.SETTINGS``.
"""
