"""Alerting: rules per tenant, the alert lifecycle, missed runs and notifications.

Pure: ``rules`` (conditions, facts, ``evaluate``), ``lifecycle`` (``derive``,
``acknowledge``, maintenance windows), ``schedules`` (cron, missed runs), ``records``
(the alert as JSON). At the edge: ``notify`` (channels and senders) and ``service``
(the evaluator and notifier threads of the processor).
"""
