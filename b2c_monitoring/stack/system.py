"""Machine-level steps the local stack needs: Debian packages, system users, permissions."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

from b2c_monitoring.errors import StackError
from b2c_monitoring.stack.base import Progress, load_versions

_apt_updated = False
# another apt run holding the lock is waited for, not failed on
_APT = ("apt-get", "-o", "DPkg::Lock::Timeout=900")


def apt_install(packages: Sequence[str], progress: Progress) -> None:
    global _apt_updated
    if shutil.which("apt-get") is None:
        raise StackError(
            f"cannot install {', '.join(packages)}: apt-get is missing; install them by hand"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        progress("apt-get update")
        _run([*_APT, "update", "-q"], env)
        _apt_updated = True
    progress(f"apt-get install {' '.join(packages)}")
    _run([*_APT, "install", "-y", "-q", "--no-install-recommends", *packages], env)


def debian_version(package: str) -> str | None:
    """The Debian version of the installed ``package``, if any."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
    )
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def install_debian_part(part: str, package: str, binary: Path, progress: Progress) -> None:
    """A stack part that runs Debian's ``package``: installed with apt when ``binary`` is
    missing (as root; otherwise what to run), and its version said against
    ``versions.toml``'s ``[part] debian_version`` (another is used, with a word)."""
    if not binary.is_file():
        if os.geteuid() != 0:
            raise StackError(f"{binary} is missing: apt-get install {package} (as root)")
        apt_install([package], progress)
        if not binary.is_file():
            raise StackError(f"apt-get installed {package}, but {binary} is missing")
    wanted = load_versions().get(part, {}).get("debian_version")
    have = debian_version(package)
    if isinstance(wanted, str) and have is not None and have != wanted:
        progress(f"{part}: package {have} is installed, versions.toml names {wanted}")
    else:
        progress(f"{part}: {have or binary} installed")


def _run(argv: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )


def ensure_system_user(user: str, progress: Progress) -> None:
    """Create ``user`` as a system user without home and login shell if missing."""
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise StackError(f"system user {user!r} is missing and only root can create it")
    progress(f"creating system user {user}")
    done = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            user,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 9):  # 9: created meanwhile by someone else
        raise StackError(f"useradd {user} failed: {done.stderr.strip()}")


def user_ids(user: str) -> tuple[int, int, frozenset[int]]:
    entry = pwd.getpwnam(user)
    groups = {entry.pw_gid}
    groups.update(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)
    return entry.pw_uid, entry.pw_gid, frozenset(groups)


def _can_search(st: os.stat_result, uid: int, gids: frozenset[int]) -> bool:
    if uid == st.st_uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def grant_search_path(path: Path, user: str, progress: Progress) -> None:
    """Let ``user`` reach ``path``: add the others' search bit (never read) to every
    folder above it that the user could not pass."""
    uid, _gid, gids = user_ids(user)
    for folder in reversed(path.resolve().parents):
        st = folder.stat()
        if not _can_search(st, uid, gids):
            progress(f"allowing {user} to pass {folder} (chmod o+x)")
            folder.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give ``root`` and everything below it to uid:gid (skips what is already theirs)."""
    for folder, dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, n) for n in (*dirs, *files))]:
            st = os.lstat(name)
            if st.st_uid != uid or st.st_gid != gid:
                os.lchown(name, uid, gid)
