#!/usr/bin/env bash
# Sets up and runs the whole product locally with demo probes: uv and the locked
# Python environment, then `b2c demo`, which installs and starts every real service
# under .b2c/ and runs the demo probes. `uv run b2c stack down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

# uv from PyPI if the machine lacks it; `python3 -m uv` works without a PATH shim
if command -v uv >/dev/null 2>&1; then
    uv() { command uv "$@"; }
else
    python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
    uv() { python3 -m uv "$@"; }
fi
uv sync --frozen --quiet
uv run b2c demo "$@"
