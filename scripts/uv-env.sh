# Sourced by the scripts: uv from PyPI if the machine lacks it (`python3 -m uv` works
# without a PATH shim), then the locked Python environment.
if command -v uv >/dev/null 2>&1; then
    uv() { command uv "$@"; }
else
    python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
    uv() { python3 -m uv "$@"; }
fi
uv sync --frozen --quiet
