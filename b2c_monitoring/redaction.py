"""Masking secrets before anything is stored.

Applied to every free text the processor stores (error messages, metadata values).
The log pipeline masks the same kinds of secret in the collector before Elasticsearch
(``collector-config/collector.yaml``); the patterns here are the reference for both.
"""

from __future__ import annotations

import re
from typing import Final

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


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
