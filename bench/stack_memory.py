"""Memory of each part of a running local stack: proportional set size (PSS) of the
part's whole process tree, so shared pages (Postgres' shared buffers) count once.

    uv run python bench/stack_memory.py [--home .b2c] [--port-offset 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from b2c_monitoring.stack.local import LocalStack, default_layout


def tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--port-offset", type=int, default=None)
    args = parser.parse_args()
    stack = LocalStack(default_layout(args.home, args.port_offset))
    total = 0
    for status in stack.supervisor.status():
        if status.pid is None:
            print(f"{status.name:14} not running")
            continue
        kib = sum(pss_kib(p) for p in tree(status.pid))
        total += kib
        print(f"{status.name:14} {kib / 1024:8.0f} MiB")
    print(f"{'total':14} {total / 1024:8.0f} MiB")


if __name__ == "__main__":
    main()
