"""Masking secrets before anything is stored.

Applied to every free text the processor stores (error messages, metadata values).
The log pipeline masks the same kinds of secret in the collector before Elasticsearch
(``collector-config/collector.yaml``); the patterns here are the reference for both.
The operator's own patterns (``B2C_LOG_REDACT_PATTERNS``) go to the collector's
``redaction/custom``; :func:`compile_patterns` and ``redact(text, custom)`` apply them
the same way here, for a caller that is given them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from b2c_monitoring.errors import ConfigError

MASK: Final = "***"

_PATTERNS: Final = (
    # credentials in URLs: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):[^@\s/]+@"), rf"\1:{MASK}@"),
    # Authorization header values, in any text
    (
        re.compile(r"(?i)\b(authorization\s*[:=]\s*)(?:bearer|basic|token)?\s*[^\s,;\"']+"),
        rf"\1{MASK}",
    ),
    (re.compile(r"(?i)\b(bearer\s+)[a-z0-9._~+/=-]{8,}"), rf"\1{MASK}"),
    # key=value and "key": "value" pairs whose key names a secret
    (
        re.compile(
            r"(?i)([\"']?\b(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
            r"client[_-]?secret|cookie|set-cookie|session[_-]?id)[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;]+)"
        ),
        rf"\1{MASK}",
    ),
)


# what the collector's redaction processor puts in place of a custom pattern's match
CUSTOM_MASK: Final = "****"

# a deployment's own patterns, compiled (compile_patterns)
Patterns = Sequence[re.Pattern[str]]


def compile_patterns(patterns: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    """The operator's own patterns (``B2C_LOG_REDACT_PATTERNS``), compiled once; a
    pattern that is not a regular expression is a ConfigError naming it."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ConfigError(f"redaction pattern {pattern!r}: {exc}") from exc
    return tuple(compiled)


def redact(text: str, custom: Patterns = ()) -> str:
    """``text`` with the built-in rules applied, then every match of ``custom`` masked
    (in that order, as in the collector)."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for extra in custom:
        text = extra.sub(CUSTOM_MASK, text)
    return text
