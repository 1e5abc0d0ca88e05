"""Starting, watching and stopping the local stack's processes.

Each part runs detached in its own session, its output appended to its log file,
its pid in ``run/<part>/pid``. A part that does not turn healthy within its
deadline is reported with its log file and the last lines of that log.

Every process of a part carries ``B2C_STACK_MARK=<home>/<part>`` in its environment
(children inherit it: the processor's workers, Postgres' backends), so what a crashed
part left behind (re-parented, outside the recorded process group) is found by
scanning ``/proc`` and ended before a new one starts and on ``stop``.

A part with ``optional = True`` (the demo's Celery worker) is started only when asked
for by name, stopped with the rest, and listed by ``status`` only while it runs.

``healthy`` is liveness (the process answers); a part that also has ``readiness``
says whether it can do its work, and why not.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from b2c_monitoring.errors import StackError
from b2c_monitoring.stack.base import Part, Progress, StackLayout

MARK = "B2C_STACK_MARK"


@dataclass(frozen=True)
class PartStatus:
    name: str
    running: bool
    healthy: bool
    pid: int | None
    log: Path
    endpoints: dict[str, str]
    ready: bool
    """Whether it can do its work: healthy, and its own readiness check (if any) passes."""
    reason: str | None
    """Why it is not ready (or not running): for a part that is down, its log's last lines."""


def marked(mark: str) -> list[int]:
    """Pids of live processes whose environment holds ``B2C_STACK_MARK=<mark>``."""
    wanted = f"{MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if wanted in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log yet)"
    return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    def __init__(self, layout: StackLayout, parts: Sequence[Part]) -> None:
        self.layout = layout
        self.parts = list(parts)

    def _pid_file(self, part: Part) -> Path:
        return self.layout.run(part.name) / "pid"

    def pid(self, part: Part) -> int | None:
        try:
            pid = int(self._pid_file(part).read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # a zombie of ours that exited counts as gone
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            return None
        return None if state == "Z" else pid

    def mark(self, part: Part) -> str:
        return f"{self.layout.home}/{part.name}"

    def leftovers(self, part: Part) -> list[int]:
        """Processes of ``part`` that are not the recorded one (a crashed part's children)."""
        recorded = self.pid(part)
        return [pid for pid in marked(self.mark(part)) if pid != recorded]

    def end_leftovers(self, part: Part, progress: Progress, *, timeout: float = 10.0) -> None:
        """End what a crashed ``part`` left behind: SIGTERM, then SIGKILL after ``timeout``."""
        pids = self.leftovers(part)
        if not pids:
            return
        progress(f"{part.name}: ending {len(pids)} process(es) a previous run left behind: {pids}")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (alive := set(marked(self.mark(part))) & set(pids)):
            for pid in alive:
                _reap(pid)
            time.sleep(0.1)
        for pid in set(marked(self.mark(part))) & set(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def start(self, part: Part, progress: Progress, *, timeout: float = 120.0) -> None:
        if self.pid(part) is not None and part.healthy():
            progress(f"{part.name}: already running")
            return
        part.install(progress)
        if self.pid(part) is None:
            self.end_leftovers(part, progress)
        launch = part.prepare()
        log_path = self.layout.log(part.name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.layout.run(part.name).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **launch.env, MARK: self.mark(part)}
        # the user's own group, not root's, for a part that runs unprivileged
        group = pwd.getpwnam(launch.user).pw_gid if launch.user else None
        with open(log_path, "ab") as log:
            log.write(f"\n==== starting {part.name}: {' '.join(launch.argv)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                launch.argv,
                env=env,
                cwd=launch.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=launch.user,
                group=group,
                extra_groups=[] if launch.user else None,
            )
        self._pid_file(part).write_text(str(process.pid))
        progress(f"{part.name}: started (pid {process.pid}), waiting until healthy")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(
                    f"{part.name} exited with code {process.returncode}; see {log_path}:\n{tail(log_path)}"
                )
            if part.healthy():
                after_start = getattr(part, "after_start", None)
                if after_start is not None:
                    after_start(progress)
                progress(f"{part.name}: healthy")
                return
            time.sleep(0.25)
        raise StackError(
            f"{part.name} did not become healthy within {timeout:.0f}s; see {log_path}:\n{tail(log_path)}"
        )

    def stop(self, part: Part, progress: Progress, *, timeout: float = 30.0) -> None:
        pid = self.pid(part)
        if pid is None:
            self._pid_file(part).unlink(missing_ok=True)
            self.end_leftovers(part, progress)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid(part) is not None:
            _reap(pid)
            time.sleep(0.1)
        if self.pid(part) is not None:
            progress(f"{part.name}: did not stop within {timeout:.0f}s, killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            time.sleep(0.2)
            _reap(pid)
        self._pid_file(part).unlink(missing_ok=True)
        self.end_leftovers(part, progress)
        progress(f"{part.name}: stopped")

    def up(self, progress: Progress) -> None:
        for part in self.parts:
            if not getattr(part, "optional", False):
                self.start(part, progress)

    def down(self, progress: Progress) -> None:
        for part in reversed(self.parts):
            self.stop(part, progress)

    def status(self) -> list[PartStatus]:
        result = []
        for part in self.parts:
            pid = self.pid(part)
            if pid is None and getattr(part, "optional", False):
                continue
            healthy = pid is not None and part.healthy()
            reason: str | None = None
            if pid is None:
                reason = f"not running; last lines of {self.layout.log(part.name)}:\n" + tail(
                    self.layout.log(part.name), 10
                )
            elif not healthy:
                reason = "running but not answering its health check"
            else:
                readiness = getattr(part, "readiness", None)
                if readiness is not None:
                    reason = readiness()
            result.append(
                PartStatus(
                    name=part.name,
                    running=pid is not None,
                    healthy=healthy,
                    pid=pid,
                    log=self.layout.log(part.name),
                    endpoints=part.endpoints(),
                    ready=healthy and reason is None,
                    reason=reason,
                )
            )
        return result

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise StackError(f"no part named {name!r}; parts: {', '.join(p.name for p in self.parts)}")


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
