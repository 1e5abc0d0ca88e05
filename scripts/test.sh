#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine and runs the whole suite:
# uv and the locked Python environment, then pytest, whose fixtures install and start
# the real local stack (Postgres, Elasticsearch, Prometheus, the collector built with
# the Collector Builder, the processor, the API serving the console built with Vite)
# under .b2c-test/, and Chromium for the console's browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/uv-env.sh

echo "== lint: ruff, mypy --strict"
uv run ruff check .
uv run ruff format --check . >/dev/null || { uv run ruff format --diff . | head -50; exit 1; }
uv run mypy

echo "== our collector components (Go): gofmt, go vet, go test"
GO="$(command -v go || echo /usr/local/go/bin/go)"
for module in collector-components/*/; do
    unformatted="$("$(dirname "$GO")/gofmt" -l "$module")"
    [ -z "$unformatted" ] || { echo "gofmt: $unformatted" >&2; exit 1; }
    (cd "$module" && "$GO" vet ./... && "$GO" test -count=1 ./...)
done

echo "== installing the stack's parts (a first collector build takes minutes)"
uv run b2c stack install --home .b2c-test

echo "== helm for the chart's tests (built from the Go module proxy once, then cached)"
uv run python -m b2c_monitoring.stack.helm >/dev/null

echo "== the hub's test client (the real @microsoft/signalr, from npm)"
[ -d tests/hub_client/node_modules/@microsoft/signalr ] || npm ci --prefix tests/hub_client --no-audit --no-fund

echo "== a service with the OpenTelemetry JS SDK (from npm), for the ingestion tests"
[ -d tests/otel_js_client/node_modules/@opentelemetry/exporter-trace-otlp-proto ] || npm ci --prefix tests/otel_js_client --no-audit --no-fund

echo "== the console's unit and component tests (vitest)"
[ -d console/node_modules/vitest ] || npm ci --prefix console --no-audit --no-fund
npm test --prefix console --silent

echo "== a real browser for the console's end-to-end tests (Debian's chromium, driven by Playwright)"
if [ ! -x /usr/bin/chromium ]; then
    apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
        --no-install-recommends chromium fonts-dejavu-core fonts-liberation >/dev/null
fi

echo "== Redis from Debian, the broker of the Celery tests' real worker"
if ! command -v redis-server >/dev/null; then
    apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
        --no-install-recommends redis-server >/dev/null
fi

echo "== tests"
set +e
uv run pytest "$@"
status=$?
set -e
# 5: no tests were collected; that is a failure of the suite, not a pass
if [ "$status" -eq 5 ]; then
    echo "no tests ran" >&2
    exit 1
fi
exit "$status"
