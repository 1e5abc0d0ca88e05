"""b2c serve ...: run one of the product's processes in the foreground."""

from __future__ import annotations

import logging
import re
from typing import Annotated

import typer

from b2c_monitoring.cli.context import handle_errors
from b2c_monitoring.settings import load_settings

app = typer.Typer(
    help="Run the processor or the admin API in the foreground.", no_args_is_help=True
)


class _RedactTokens(logging.Filter):
    """uvicorn logs a WebSocket's path with its query, even without an access log, and a
    browser can send the hub's token only there (``access_token=``): mask it."""

    _TOKEN = re.compile(r"(access_token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                self._TOKEN.sub(r"\1[REDACTED]", a) if isinstance(a, str) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str):
            record.msg = self._TOKEN.sub(r"\1[REDACTED]", record.msg)
        return True


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in ("uvicorn.error", "uvicorn.access", "uvicorn"):
        logging.getLogger(name).addFilter(_RedactTokens())


@app.command()
@handle_errors
def processor() -> None:
    """The OTLP gRPC processor (settings from B2C_* environment variables)."""
    from b2c_monitoring.processor.process import serve

    _logging()
    serve(load_settings())


@app.command()
@handle_errors
def api(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="[default: the port of B2C_API_URL]")] = None,
) -> None:
    """The admin API (settings from B2C_* environment variables); https with B2C_TLS."""
    from datetime import UTC, datetime
    from urllib.parse import urlparse

    import uvicorn

    from b2c_monitoring.api.app import create_app
    from b2c_monitoring.stack.certificates import StackTls
    from b2c_monitoring.stack.local import default_layout
    from b2c_monitoring.tls import is_loopback

    _logging()
    settings = load_settings()
    tls = StackTls.from_settings(
        default_layout().data("tls"),  # self-signed: the local stack's own CA (B2C_HOME)
        settings.tls,
        cert_file=settings.tls_cert_file,
        key_file=settings.tls_key_file,
        ca_file=settings.tls_ca_file,
        extra_names=settings.tls_extra_names,
    )
    log = logging.getLogger("b2c_monitoring.api")
    tls.ensure(datetime.now(UTC), log.info)
    if tls.files is not None:
        log.info("admin API: %s", tls.describe())
    elif is_loopback(host):
        log.info("admin API: plaintext on loopback (B2C_TLS=off)")
    else:
        log.warning(
            "PLAINTEXT on %s: tokens and tenant data cross the network unencrypted; "
            "set B2C_TLS=files (or self-signed) to serve https",
            host,
        )
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port or urlparse(settings.api_url).port or 8000,
        log_level="info",
        access_log=False,
        ssl_certfile=tls.files.cert_file if tls.files else None,
        ssl_keyfile=tls.files.key_file if tls.files else None,
    )
