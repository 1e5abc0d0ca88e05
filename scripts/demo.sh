#!/usr/bin/env bash
# Sets up and runs the whole product locally with demo probes: uv and the locked
# Python environment, then `b2c demo`, which installs and starts every real service
# under .b2c/ and runs the demo probes. `uv run b2c stack down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/uv-env.sh
uv run b2c demo "$@"
