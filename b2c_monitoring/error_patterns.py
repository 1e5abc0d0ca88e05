"""Error messages as patterns: what varies between occurrences of one error is masked.

``Order 4711 of 2026-11-28T10:00:01Z failed at https://erp/x?id=9`` and ``Order 52 of
2026-11-29T08:00:00Z failed at https://erp/y`` are one pattern, ``Order <n> of <ts>
failed at <url>``; its ``fingerprint`` (SHA-256 of the pattern, hex) is what the
error-patterns query aggregates on.

The collector computes both at ingestion (``transform/error_patterns`` in
``collector-config/collector.yaml``, after redaction) for every communication error
and every record of level ERROR or above, so grouping a million errors is an
Elasticsearch aggregation, not a scan. This module is the reference for those rules:
the same regular expressions, in the same order, with the same replacements, and
``tests/test_error_patterns.py`` feeds both the same samples. The expressions stay in
the subset where Python's ``re`` (with ``re.ASCII``) and Go's RE2 agree: no
look-around, no ``\\s`` (RE2's lacks ``\\v``), ASCII classes only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Final

from b2c_monitoring import contract as c

PATTERN_ATTR: Final = "error.pattern"
FINGERPRINT_ATTR: Final = "error.fingerprint"
# the record's level from which it gets a pattern even without the event name
ERROR_SEVERITY: Final = 17

# (expression, replacement), applied in this order; each as in the collector
RULES: Final[tuple[tuple[str, str], ...]] = (
    # URLs first: their paths and queries hold ids, numbers and secrets' masks
    (r"""(?i)\b[a-z][a-z0-9+.-]*://[^ \t\n\r"'<>]+""", "<url>"),
    (r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b", "<email>"),
    # ISO 8601 date-times and dates, then times of day
    (
        r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?\b",
        "<ts>",
    ),
    (r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b", "<time>"),
    (r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>"),
    (r"(?i)\b0x[0-9a-f]+\b", "<hex>"),
    # whole numbers before hex ids, so 12345678 is a number and 4711abcd an id
    (r"\b\d+(?:\.\d+)?\b", "<n>"),
    (r"(?i)\b[0-9a-f]{8,}\b", "<hex>"),
    # digits left inside words: ORD4711, v2, sku_17
    (r"\d+", "<n>"),
)

_COMPILED: Final = tuple((re.compile(rx, re.ASCII), repl) for rx, repl in RULES)


def pattern_of(message: str) -> str:
    """``message`` with its ids, numbers, timestamps, URLs and e-mail addresses masked."""
    for expression, replacement in _COMPILED:
        message = expression.sub(replacement, message)
    return message


def fingerprint(pattern: str) -> str:
    """The pattern's key: SHA-256 of its UTF-8 bytes, lower-case hex (OTTL's ``SHA256``)."""
    return hashlib.sha256(pattern.encode()).hexdigest()


def message_of(body: object, attributes: Mapping[str, object]) -> str | None:
    """The text a record's pattern is made from: its ``exception.message`` when it has a
    non-empty one, else its body when that is a string."""
    message = attributes.get(c.EXCEPTION_MESSAGE)
    if isinstance(message, str) and message != "":
        return message
    return body if isinstance(body, str) else None


def applies_to(severity_number: int | None, attributes: Mapping[str, object]) -> bool:
    """Whether a record gets a pattern: a communication error, or an error-level record."""
    if attributes.get(c.EVENT_NAME) == c.COMMUNICATION_ERROR_EVENT:
        return True
    return severity_number is not None and severity_number >= ERROR_SEVERITY


def pattern_attributes(
    body: object, severity_number: int | None, attributes: Mapping[str, object]
) -> dict[str, str]:
    """The attributes the collector adds to a record (none when it does not apply)."""
    if not applies_to(severity_number, attributes):
        return {}
    message = message_of(body, attributes)
    if message is None:
        return {}
    pattern = pattern_of(message)
    return {PATTERN_ATTR: pattern, FINGERPRINT_ATTR: fingerprint(pattern)}
