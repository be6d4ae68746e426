"""One local stack a state folder: an exclusive lock on ``<state-dir>/stack.lock``, holding the
owner's pid, taken before anything starts and released when the stack stops (or its process dies:
the kernel drops the lock with the file)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TextIO


class StackAlreadyRunning(RuntimeError):
    pass


def acquire(state_dir: Path) -> TextIO:
    """The locked file, held until ``release``; StackAlreadyRunning if another process holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock_file = open(state_dir / "stack.lock", "a+")  # noqa: SIM115 - held (and locked) until the stack stops
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.seek(0)
        owner = lock_file.read().strip() or "another process"
        lock_file.close()
        raise StackAlreadyRunning(
            f"a local stack is already running from {state_dir} (pid {owner}); stop it first"
        ) from None
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(str(os.getpid()))
    lock_file.flush()
    return lock_file


def release(lock_file: TextIO) -> None:
    fcntl.flock(lock_file, fcntl.LOCK_UN)
    lock_file.close()
