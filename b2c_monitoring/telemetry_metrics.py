"""Metrics of the product's own work that more than one process counts.

The live-update hub runs in the API; notifications are sent by the alert evaluator,
which runs in the processor. Each process exposes the default registry (the API on
``GET /metrics``, the processor on its metrics port), so an object defined here is
scraped from whichever process counts into it; dashboards and rules sum over jobs.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

HUB_CONNECTIONS: Final = Gauge(
    "b2c_hub_connections",
    "Open live-update (SignalR hub) connections of this process.",
)
NOTIFICATIONS: Final = Counter(
    "b2c_notifications",
    "Alert notification deliveries attempted, per channel kind (webhook, slack, email) and outcome (sent, failed).",
    ["channel", "outcome"],
)
ALERTING_LEADER: Final = Gauge(
    "b2c_alerting_leader",
    "1 while this processor replica leads alerting (runs the alert evaluator and the notifier), else 0.",
)
ALERT_ROUNDS: Final = Counter(
    "b2c_alert_rounds",
    "Rounds of the alert evaluator and the notifier (loop) this process ran as the leader.",
    ["loop"],
)
