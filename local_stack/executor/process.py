"""Starting and ending a task's process: the one place the local executor touches processes.

A small interface (``Launcher.launch`` and ``TaskProcess``): a task is forked from the executor's
fork server (``local_stack.forkserver``: an interpreter with the SDK already imported) when it can
be, and otherwise started the plain way (``launch``, ``subprocess``); either way it is a process of
its own, leader of its own process group, in its own folder, with exactly its environment, its
output appended to its log file, and the runner sees the same ``TaskProcess``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from local_stack.forkserver import ForkServer

logger = logging.getLogger(__name__)

# SIGTERM, then SIGKILL after this long: a pod's grace period, shortened for a local stack.
ABORT_GRACE_SECONDS = 3.0
# Whether the executor starts a fork server (LOCAL_EXECUTOR_FORK_SERVER=0: every task the plain way).
FORK_SERVER_VARIABLE = "LOCAL_EXECUTOR_FORK_SERVER"


class _Started(Protocol):
    """What a started process offers: a plain one (``_Popen``) or a forked one (``ForkedProcess``)."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float) -> int | None: ...


class _Popen:
    def __init__(self, popen: subprocess.Popen) -> None:
        self._popen = popen
        self.pid = popen.pid

    def poll(self) -> int | None:
        return self._popen.poll()

    def wait(self, timeout: float) -> int | None:
        try:
            return self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


class TaskProcess:
    """A started task process, leader of its own process group (everything it starts ends with it)."""

    def __init__(self, started: _Started | subprocess.Popen) -> None:
        self._started: _Started = _Popen(started) if isinstance(started, subprocess.Popen) else started

    @property
    def pid(self) -> int:
        return self._started.pid

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        return self._started.poll()

    def wait(self, timeout: float) -> int | None:
        """The exit code once it has exited within ``timeout`` seconds, else None."""
        return self._started.wait(timeout)

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal its whole process group (gone already: nothing to do)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def terminate(self) -> None:
        """SIGTERM the group, then SIGKILL it after the grace period; returns once it has exited."""
        self.kill_group(signal.SIGTERM)
        if self.wait(ABORT_GRACE_SECONDS) is None:
            self.kill_group(signal.SIGKILL)
            while self.wait(1.0) is None:
                pass


def launch(argv: list[str], *, cwd: Path, env: Mapping[str, str], log_file: Path) -> TaskProcess:
    """Start ``argv`` in ``cwd`` with exactly ``env``, stdin closed, stdout and stderr appended to
    ``log_file``. Raises OSError if it cannot be started."""
    with log_file.open("ab") as log:
        popen = subprocess.Popen(
            argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: an abort kills everything it started
        )  # fmt: skip
    return TaskProcess(popen)


class Launcher:
    """Starts the executor's task processes: forked from its fork server when there is one and the
    task's command and environment allow it, else the plain way (``launch``)."""

    def __init__(self, fork_server: ForkServer | None = None) -> None:
        self.fork_server = fork_server

    @classmethod
    def for_executor(cls, *, interpreter: str, environment: Mapping[str, str], work_dir: Path) -> Launcher:
        """With a fork server unless ``LOCAL_EXECUTOR_FORK_SERVER=0``; ``environment``: what most
        tasks get, which the server imports the SDK under."""
        if os.environ.get(FORK_SERVER_VARIABLE, "1") == "0":
            return cls()
        return cls(ForkServer(interpreter=interpreter, environment=environment, work_dir=work_dir).start())

    def launch(self, argv: list[str], *, cwd: Path, env: Mapping[str, str], log_file: Path) -> TaskProcess:
        """As ``launch``; raises OSError if it cannot be started."""
        if self.fork_server is not None:
            forked = self.fork_server.launch(argv, cwd=cwd, env=env, log_file=log_file)
            if forked is not None:
                return TaskProcess(forked)
        return launch(argv, cwd=cwd, env=env, log_file=log_file)

    def stop(self) -> None:
        if self.fork_server is not None:
            self.fork_server.stop()
