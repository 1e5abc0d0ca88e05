"""Alerting: rules per tenant, the alert lifecycle, missed runs and notifications.

Pure (below storage, which stores what they define): ``rules`` (conditions, facts,
``evaluate``), ``lifecycle`` (``derive``, ``acknowledge``, maintenance windows),
``schedules`` (cron, missed runs), ``records`` (the alert as JSON), ``channels`` (what
each notification channel receives). At the edge (above storage): ``senders`` (HTTP
and SMTP) and ``service`` (the evaluator and notifier threads of the processor).
"""
