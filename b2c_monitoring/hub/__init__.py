"""The real-time hub ``/hubs/job-status``: its wire protocol and its fan-out.

- ``protocol``: the SignalR JSON hub protocol's framing and messages (pure).
- ``subscriptions``, ``ordering``: what a connection asked for, and in which order (pure).
- ``connection``: one WebSocket's queue, replay and re-authentication.
- ``backplane``: new events from Postgres to every connection of this API process.

What an event is lives below storage (``b2c_monitoring.live_events``: storage writes
them in the transaction of the change they announce); the HTTP endpoints live in the
API (``api/routes/hub.py``).
"""
