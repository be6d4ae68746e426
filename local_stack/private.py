"""Files of the local stack that only its user may read: the state folder and the secrets in it.

The stack may run on a host other people share, in a folder under ``/tmp`` whose name anyone can
guess: the folder is created 0700, and one that exists already must be a real directory (not a
symlink) owned by this user and closed to others, else the stack refuses to start rather than
write its secrets where someone else can read or replace them. A secret is written to a fresh
file, created exclusively with mode 0600 and never through a symlink.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path


class UnsafeStateDirectory(RuntimeError):
    """The state folder exists but is not this user's alone."""


def private_directory(path: Path) -> Path:
    """``path`` (and its missing parents) as a directory only this user can enter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeStateDirectory(f"{path} is not a directory (a symlink?): choose another --state-dir")
    if info.st_uid != os.getuid():
        raise UnsafeStateDirectory(f"{path} belongs to uid {info.st_uid}, not to you: choose another --state-dir")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)  # ours: close it before anything secret is written
    return path


def write_secret(path: Path, data: bytes | str) -> Path:
    """``data`` in a new file only this user can read (an old one is replaced, never followed)."""
    raw = data.encode() if isinstance(data, str) else data
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(raw)
    return path
