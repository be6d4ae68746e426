"""The executor's side of the fork server: starting it, asking it for a task, and the forked task's
handle (the ``TaskProcess`` interface of the executor's process.py)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from local_stack.forkserver.protocol import (
    HELLO_BYTES,
    LOST_RETURNCODE,
    READY_TIMEOUT_SECONDS,
    REAPPLIED_VARIABLES,
    REQUEST_TIMEOUT_SECONDS,
    SERVER_LOG,
    STARTUP_VARIABLE_PREFIXES,
    STARTUP_VARIABLES,
    Command,
    Lines,
    parse_command,
)

logger = logging.getLogger(__name__)


class ForkServer:
    """The executor's handle on its fork server (see the module docstring)."""

    def __init__(self, *, interpreter: str, environment: Mapping[str, str], work_dir: Path) -> None:
        """``environment``: the server's, which should be what most tasks get (the executor's
        own with the platform's defaults), so that their imports see the same values."""
        self.interpreter = os.path.abspath(interpreter)
        self.environment = dict(environment)
        self.work_dir = Path(work_dir)
        self.problem: str | None = None  # why it does not serve, once known
        self.preload_seconds: float | None = None
        self._reads: set[str] = set()
        self._snapshots: list[str] = []
        self._ready = threading.Event()
        self._control: socket.socket | None = None
        self._process: subprocess.Popen | None = None
        self._send_lock = threading.Lock()

    def start(self) -> ForkServer:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with (self.work_dir / SERVER_LOG).open("ab") as log:
            self._process = subprocess.Popen(
                [self.interpreter, "-c", "from local_stack.forkserver.server import serve; serve()", str(theirs.fileno())],
                cwd=self.work_dir, env=self.environment, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, pass_fds=(theirs.fileno(),), start_new_session=True,
            )  # fmt: skip
        theirs.close()
        self._control = ours
        threading.Thread(target=self._await_hello, name="forkserver-hello", daemon=True).start()
        return self

    def _await_hello(self) -> None:
        assert self._control is not None
        try:
            hello = json.loads(self._control.recv(HELLO_BYTES) or b'{"problem": "the fork server exited"}')
        except (OSError, ValueError) as exc:
            hello = {"problem": f"no hello from the fork server: {exc}"}
        self._reads = set(hello.get("reads") or ())
        self._snapshots = list(hello.get("snapshots") or ())
        self.preload_seconds = hello.get("preload_seconds")
        self.problem = hello.get("problem")
        if self.problem:
            logger.warning("the fork server does not serve: %s; tasks start the plain way", self.problem)
        else:
            logger.info("the fork server is ready (the SDK imported in %.2f s)", self.preload_seconds or 0)
        self._ready.set()

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> bool:
        """Whether the server serves, waiting for its preload at most ``timeout`` seconds."""
        return self._ready.wait(timeout) and self.problem is None

    def divergence(self, command: Command, env: Mapping[str, str]) -> str | None:
        """Why a task with ``env`` may not be forked from this server (None: it may)."""
        base = self.environment
        names = self._reads.difference(REAPPLIED_VARIABLES)
        names.update(
            name for name in (*base, *env) if name in STARTUP_VARIABLES or name.startswith(STARTUP_VARIABLE_PREFIXES)
        )
        for name in sorted(names):
            if env.get(name) != base.get(name):
                return f"{name} differs from the fork server's"
        for prefix in self._snapshots:
            if {k: v for k, v in env.items() if k.startswith(prefix)} != {
                k: v for k, v in base.items() if k.startswith(prefix)
            }:
                return f"the {prefix}* variables differ from the fork server's"
        return None

    def launch(self, argv: list[str], *, cwd: Path, env: Mapping[str, str], log_file: Path) -> ForkedProcess | None:
        """Fork ``argv`` as a plain start would run it; None if it cannot be (the caller starts it
        the plain way). Raises OSError, as a plain start does, if the log, the folder or the
        environment cannot be used."""
        command = parse_command(argv, interpreter=self.interpreter)
        if command is None or not self.wait_ready():
            return None
        reason = self.divergence(command, env)
        if reason is not None:
            logger.info("not forking %s: %s", argv[0], reason)
            return None
        with log_file.open("ab") as log:  # opened here, as a plain start opens it: the same errors
            return self._request(command, cwd=cwd, env=env, log=log.fileno())

    def _request(self, command: Command, *, cwd: Path, env: Mapping[str, str], log: int) -> ForkedProcess | None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._send_lock:
                if self._control is None:
                    raise OSError("the fork server is stopped")
                socket.send_fds(self._control, [b"task"], [theirs.fileno(), log])
            theirs.close()
            ours.settimeout(REQUEST_TIMEOUT_SECONDS)
            ours.sendall(json.dumps({"command": command.__dict__, "cwd": str(cwd), "env": dict(env)}).encode() + b"\n")
            lines = Lines(ours)
            reply = lines.next()
        except OSError as exc:  # a broken server: this task and the next start the plain way
            self._lost(f"the fork server failed: {exc!r}")
            ours.close()
            return None
        finally:
            theirs.close()
        if reply is None:
            ours.close()
            self._lost("the fork server closed a task's socket without an answer")
            return None
        if "error" in reply:
            ours.close()
            raise OSError(int(reply.get("errno") or 0), str(reply["error"]))
        return ForkedProcess(int(reply["pid"]), lines)

    def _lost(self, problem: str) -> None:
        if self.problem is None:
            logger.warning("%s; tasks start the plain way from now on", problem)
        self.problem = problem

    def stop(self) -> None:
        """End the server (tasks it started keep running, as plain ones outlive their executor)."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


class ForkedProcess:
    """A task forked by the server: ``TaskProcess``'s interface (the executor's process.py)."""

    def __init__(self, pid: int, lines: Lines) -> None:
        self.pid = pid
        self._lines = lines
        self._returncode: int | None = None
        self._lost = False
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        return self.wait(0)

    def wait(self, timeout: float) -> int | None:
        """The exit code once it has exited within ``timeout`` seconds, else None."""
        if self._returncode is not None:
            return self._returncode
        if not self._lock.acquire(timeout=max(timeout, 0.001)):
            return self._returncode
        try:
            return self._read(timeout)
        finally:
            self._lock.release()

    def _read(self, timeout: float) -> int | None:
        if self._returncode is not None:
            return self._returncode
        if self._lost:  # the server went away: all that is left is to see the process gone
            deadline = time.monotonic() + timeout
            while _alive(self.pid):
                if time.monotonic() >= deadline:
                    return None
                time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))
            self._returncode = LOST_RETURNCODE
            return self._returncode
        try:
            message = self._lines.next(timeout=max(timeout, 0.001))
        except (TimeoutError, BlockingIOError):
            return None
        except OSError:
            message = None
        if message is None:
            self._lost = True
            return self._read(timeout)
        self._returncode = int(message["returncode"])
        self._lines.sock.close()
        return self._returncode


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
