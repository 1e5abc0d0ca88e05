"""No file in the repository carries a merge's conflict markers.

Ruff and mypy catch them in Python; nothing catches them in Markdown, YAML, SQL or the
console's sources, and one such merge once left half of a section of
docs/development.md between markers.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parent.parent
# only the two outer markers: a line of seven "=" is also a Markdown heading's underline
MARKER: Final = re.compile(r"^(<{7}|>{7})( |$)", re.MULTILINE)


def marked_lines(text: str) -> list[int]:
    return [text.count("\n", 0, match.start()) + 1 for match in MARKER.finditer(text)]


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True
    ).stdout
    return [REPO / name for name in listed.decode().split("\0") if name]


def test_no_tracked_file_has_conflict_markers() -> None:
    found: list[str] = []
    for path in tracked_text_files():
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        for line in marked_lines(data.decode("utf-8", errors="replace")):
            found.append(f"{path.relative_to(REPO)}:{line}")
    assert not found, f"conflict markers left by a merge: {found}"


def test_the_markers_of_a_conflict_are_found_and_a_heading_underline_is_not() -> None:
    conflict = "a\n<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> branch\n"
    assert marked_lines(conflict) == [2, 6]
    assert marked_lines("Title\n=======\n\ntext >>>>>>> inline\n") == []
