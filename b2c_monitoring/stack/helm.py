"""``helm``, built from the Go module proxy and cached by version, to check the chart.

Helm has no Debian package and no PyPI wheel; ``go install <module>@<version>``
(``versions.toml``, ``[helm]``) builds it with nothing but Go and the module proxy
(about 3.5 minutes cold on two cores). The binary is cached like the collector's, in
``<cache>/helm/<version>-<go version>/helm``, built in a temporary folder beside it
and renamed into place when complete, one build per entry at a time (a lock file).
``scripts/test.sh`` runs ``python -m b2c_monitoring.stack.helm`` before pytest, so no
test's timeout includes the build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

from b2c_monitoring.errors import StackError
from b2c_monitoring.stack.base import Progress, StackLayout, file_lock, load_versions
from b2c_monitoring.stack.collector import go_executable, go_version

BINARY_NAME: Final = "helm"
BUILD_TIMEOUT_S: Final = 1800.0


def helm_release(root: Path | None = None) -> tuple[str, str]:
    """(module, version) from ``versions.toml``."""
    spec = load_versions(root).get("helm", {})
    module, version = spec.get("module"), spec.get("version")
    if not isinstance(module, str) or not isinstance(version, str):
        raise StackError("versions.toml: [helm] needs module and version")
    return module, version


def helm_binary_path(layout: StackLayout) -> Path:
    _, version = helm_release()
    return layout.cache / "helm" / f"{version}-{go_version()}" / BINARY_NAME


def ensure_helm(layout: StackLayout, progress: Progress) -> Path:
    """The cached helm binary, built first if missing."""
    binary = helm_binary_path(layout)
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    entry = binary.parent
    with file_lock(entry.parent / f"{entry.name}.lock"):
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary  # built meanwhile by another process
        module, version = helm_release()
        work = Path(tempfile.mkdtemp(prefix=f"{entry.name}.tmp-", dir=entry.parent))
        started = time.monotonic()
        progress(f"helm: building {module}@{version} from the Go module proxy (minutes)")
        try:
            done = subprocess.run(
                [go_executable(), "install", f"{module}@{version}"],
                env={**os.environ, "CGO_ENABLED": "0", "GOBIN": str(work)},
                cwd=work,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
            if done.returncode != 0 or not (work / BINARY_NAME).is_file():
                tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
                raise StackError(f"building helm failed (exit code {done.returncode}):\n{tail}")
            shutil.rmtree(entry, ignore_errors=True)
            staged = work / "entry"
            staged.mkdir()
            os.replace(work / BINARY_NAME, staged / BINARY_NAME)
            os.replace(staged, entry)  # atomic: complete or absent
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"building helm took longer than {BUILD_TIMEOUT_S:.0f}s") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        progress(f"helm: built in {time.monotonic() - started:.0f}s -> {binary}")
        return binary


def main() -> None:
    from b2c_monitoring.stack.local import default_layout

    print(ensure_helm(default_layout(), lambda line: print(line, file=sys.stderr)))


if __name__ == "__main__":
    main()
