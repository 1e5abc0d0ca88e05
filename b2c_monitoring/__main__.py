"""``python -m b2c_monitoring`` and the ``b2c`` command.

The command is part of the server install; with the probes alone (``pip install
b2c-monitoring``) it says what to install instead of a traceback.
"""

from __future__ import annotations

import sys
from typing import Final

SERVER_EXTRA: Final = "b2c-monitoring[server]"


def main() -> None:
    try:
        from b2c_monitoring.cli.main import main as cli_main
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.startswith("b2c_monitoring"):
            raise
        sys.exit(
            f"b2c: the command needs the server parts ({exc.name} is missing): "
            f"pip install '{SERVER_EXTRA}'"
        )
    cli_main()


if __name__ == "__main__":
    main()
