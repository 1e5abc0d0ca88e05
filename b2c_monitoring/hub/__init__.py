"""The real-time hub ``/hubs/job-status``: events, their wire protocol, and their fan-out.

- ``events``: what a hub event is (pure).
- ``protocol``: the SignalR JSON hub protocol's framing and messages (pure).
- ``backplane``: new events from Postgres to every connection of this API process.
- ``server``: the negotiate endpoint and the WebSocket endpoint.
"""
