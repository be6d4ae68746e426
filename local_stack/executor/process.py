"""Starting and ending a task's process: the one place the local executor touches processes.

Kept to a small interface (``launch`` and ``TaskProcess``) so another launcher (a fork server) can
replace the plain ``subprocess`` start without the runner changing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

# SIGTERM, then SIGKILL after this long: a pod's grace period, shortened for a local stack.
ABORT_GRACE_SECONDS = 3.0


class TaskProcess:
    """A started task process, leader of its own process group (everything it starts ends with it)."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self._popen = popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        return self._popen.poll()

    def wait(self, timeout: float) -> int | None:
        """The exit code once it has exited within ``timeout`` seconds, else None."""
        try:
            return self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal its whole process group (gone already: nothing to do)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    def terminate(self) -> None:
        """SIGTERM the group, then SIGKILL it after the grace period; returns once it has exited."""
        self.kill_group(signal.SIGTERM)
        try:
            self._popen.wait(timeout=ABORT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill_group(signal.SIGKILL)
            self._popen.wait()


def launch(argv: list[str], *, cwd: Path, env: Mapping[str, str], log_file: Path) -> TaskProcess:
    """Start ``argv`` in ``cwd`` with exactly ``env``, stdin closed, stdout and stderr appended to
    ``log_file``. Raises OSError if it cannot be started."""
    with log_file.open("ab") as log:
        popen = subprocess.Popen(
            argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: an abort kills everything it started
        )  # fmt: skip
    return TaskProcess(popen)
