"""The admin console's build: ``console/`` (Vue + Vite) into a cache entry the API serves.

Like the collector binary, a build is cached in ``<cache>/console/<hash>/`` where
``<hash>`` covers every source file of ``console/`` (the lock file included) and the
Node version, so an unchanged console is never rebuilt and a changed one always is.
The build goes to a temporary directory that is renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from b2c_monitoring.errors import StackError
from b2c_monitoring.stack.base import Progress, StackLayout, file_lock, repo_root

# build output and installed packages are not sources
_NOT_SOURCES = frozenset({"node_modules", "dist", ".vite", "coverage", "test-results"})


class ConsoleBuildError(StackError):
    pass


def _node_version() -> str:
    node = shutil.which("node")
    if node is None:
        raise ConsoleBuildError(
            "Node.js is needed to build the console: apt-get install nodejs npm"
        )
    done = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def source_files(console: Path) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(console):
        dirnames[:] = sorted(d for d in dirnames if d not in _NOT_SOURCES)
        files.extend(Path(dirpath) / name for name in sorted(filenames))
    return files


def sources_hash(console: Path) -> str:
    """sha256 (hex) over the console's source paths and bytes and the Node version."""
    digest = hashlib.sha256(_node_version().encode())
    for path in source_files(console):
        digest.update(b"\0" + str(path.relative_to(console)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _npm(args: list[str], cwd: Path, progress: Progress, what: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise ConsoleBuildError("npm is needed to build the console: apt-get install npm")
    progress(f"console: {what}")
    done = subprocess.run(
        [npm, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    if done.returncode != 0:
        raise ConsoleBuildError(
            f"console: 'npm {' '.join(args)}' failed ({done.returncode}) in {cwd}:\n"
            f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )


def ensure_console_build(layout: StackLayout, progress: Progress, root: Path | None = None) -> Path:
    """The directory of the built console (``index.html``, ``assets/``), built if missing."""
    console = (root or repo_root()) / "console"
    if not (console / "package.json").is_file():
        raise ConsoleBuildError(f"no console sources in {console}")
    digest = sources_hash(console)
    cache = layout.cache / "console"
    final = cache / digest
    if (final / "index.html").is_file():
        return final
    with file_lock(cache / f"{digest}.lock"):
        if (final / "index.html").is_file():
            return final
        for stale in cache.glob(f"{digest}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        started = time.monotonic()
        # packages exactly as locked; `npm ci` is skipped when the installed tree already
        # matches the lock file (npm writes node_modules/.package-lock.json)
        installed = console / "node_modules" / ".package-lock.json"
        if (
            not installed.is_file()
            or installed.stat().st_mtime < (console / "package-lock.json").stat().st_mtime
        ):
            _npm(["ci", "--no-audit", "--no-fund"], console, progress, "npm ci")
        work = Path(tempfile.mkdtemp(prefix=f"{digest}.tmp-", dir=cache))
        try:
            out = work / "dist"
            _npm(
                ["run", "build", "--", "--outDir", str(out), "--emptyOutDir"],
                console,
                progress,
                "type check and build (vue-tsc, vite)",
            )
            if not (out / "index.html").is_file():
                raise ConsoleBuildError(f"console: the build wrote no index.html in {out}")
            os.replace(out, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        progress(f"console: built in {time.monotonic() - started:.0f}s -> {final}")
        return final
