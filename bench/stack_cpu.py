"""CPU seconds each part of a local stack spends while a command runs.

    uv run python bench/stack_cpu.py --home .b2c-test -- \\
        uv run python bench/job_spans.py --home .b2c-test --port-offset 1000 --seconds 20

Counts each part's process (``run/<part>/pid`` under the stack's home) and all its
descendants, so Postgres backends and the processor's workers are included; the
command itself is counted too. Other sessions' load inflates CPU seconds per unit
of work (shared cores): compare figures taken in one quiet period.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

PARTS = ("postgres", "elasticsearch", "processor", "collector", "api", "prometheus", "dns")
# replicas of a multi-replica stack (processor-2, api-3): summed with their part
_REPLICA = re.compile(r"^(?P<part>[a-z]+)-\d+$")
_TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command line, CPU seconds so far)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue  # ended meanwhile
        cpu = (int(fields[11]) + int(fields[12])) / _TICK
        found[int(entry)] = (int(fields[1]), cmdline.decode(errors="replace"), cpu)
    return found


def _label(part: str, pid: int, root: int, cmdline: str) -> str:
    if part == "postgres" and pid != root and cmdline.startswith("postgres: "):
        words = cmdline.split()
        # client backends are titled "postgres: <user> <db> <host> ..."
        return "postgres backends" if words[1] == "b2c" else f"postgres {words[1]}"
    if part == "processor" and pid != root and "spawn_main" in cmdline:
        return "processor workers"
    return part


def snapshot(roots: dict[int, str]) -> dict[int, tuple[str, float]]:
    """CPU seconds of every process under one of ``roots``, labelled by part."""
    processes = _processes()
    labelled = {}
    for pid, (_, cmdline, cpu) in processes.items():
        ancestor = pid
        while ancestor not in roots and ancestor > 1:
            ancestor = processes.get(ancestor, (0, "", 0.0))[0]
        if ancestor in roots:
            labelled[pid] = (_label(roots[ancestor], pid, ancestor, cmdline), cpu)
    return labelled


def stack_roots(home: Path) -> dict[int, str]:
    """The pid of each running part of the stack in ``home``, with its part's name."""
    roots: dict[int, str] = {}
    for pid_file in sorted((home / "run").glob("*/pid")):
        name = pid_file.parent.name
        replica = _REPLICA.match(name)
        part = replica.group("part") if replica else name
        if part not in PARTS:
            continue
        try:
            roots[int(pid_file.read_text())] = part
        except (OSError, ValueError):
            continue  # not running
    return roots


class StackCpu:
    """CPU seconds of each part of a stack since this was made. Sampled while the work
    runs (``sample``): a process that ends meanwhile (a bench's child) keeps its last
    figure."""

    def __init__(self, home: Path) -> None:
        self._roots = stack_roots(home)
        self.replicas = sum(1 for part in self._roots.values() if part == "processor")
        self._before = snapshot(self._roots)
        self._last: dict[int, tuple[str, float]] = {}

    def add(self, pid: int, label: str) -> None:
        """Count ``pid`` and its descendants too, as ``label``."""
        self._roots[pid] = label

    def sample(self) -> None:
        self._last.update(snapshot(self._roots))

    def totals(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for pid, (label, cpu) in self._last.items():
            totals[label] += cpu - (self._before[pid][1] if pid in self._before else 0.0)
        return dict(totals)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="the stack's home folder")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")

    meter = StackCpu(args.home)
    started = time.monotonic()
    process = subprocess.Popen(command)
    meter.add(process.pid, "command")
    while process.poll() is None:
        meter.sample()
        time.sleep(0.5)
    meter.sample()
    wall = time.monotonic() - started
    print(
        f"wall {wall:.1f} s, machine load {os.getloadavg()[0]:.1f}, {meter.replicas} processor(s)"
    )
    for label, cpu in sorted(meter.totals().items(), key=lambda item: -item[1]):
        if cpu >= 0.05:
            print(f"  {label:20s} {cpu:7.1f} CPU-s")
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
