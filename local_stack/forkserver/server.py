"""The fork server's process: it preloads the SDK, says hello, then forks a child per request; each
child becomes the task (``task.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from local_stack.forkserver.protocol import (
    KNOWN_SNAPSHOTS,
    PRELOAD_MODULES,
    REQUEST_TIMEOUT_SECONDS,
    Command,
    Lines,
)
from local_stack.forkserver.task import Task


def serve() -> None:
    """The fork server's main: preload, say hello on the control socket, then fork on request.
    In a forked child this returns only by raising SystemExit, as the task's interpreter would."""
    control = socket.socket(fileno=int(sys.argv[1]))
    startup_path = list(sys.path)
    started = time.perf_counter()
    reads, snapshots, problems = _preload(PRELOAD_MODULES)
    loops: list[Any] = []
    try:
        loops = _stop_background_loops()
    except Exception as exc:
        problems.append(f"cannot stop the SDK's background loops: {exc!r}")
    threads = threading.active_count()
    native = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1  # a library's own
    if threads != 1 or native != 1:
        problems.append(f"{max(threads, native)} threads are running after the preload: forking would be unsafe")
    hello = {
        "reads": sorted(reads),
        "snapshots": sorted(snapshots),
        "preload_seconds": round(time.perf_counter() - started, 3),
        "problem": "; ".join(problems) or None,
    }
    control.sendall(json.dumps(hello).encode())
    if problems:
        return
    task = _Server(control, startup_path=startup_path).run()
    if task is not None:  # in the forked child
        task.run(loops)
    os._exit(0)  # the executor has gone; the SDK's atexit handlers would trip on its stopped loops


def _preload(modules: tuple[str, ...]) -> tuple[set[str], set[str], list[str]]:
    """Import ``modules``, recording the environment variables read meanwhile (by name, and the
    prefixes of the known whole-environment copies); an unknown copy is a problem."""
    import importlib

    reads: set[str] = set()
    snapshots: set[str] = set()
    problems: list[str] = []
    environ_class = type(os.environ)
    original = environ_class.__getitem__, environ_class.__contains__, environ_class.__iter__

    def getitem(self: Any, key: str) -> Any:
        if _calling_module() not in KNOWN_SNAPSHOTS:  # a known copy's reads are covered by its prefix
            reads.add(key)
        return original[0](self, key)

    def contains(self: Any, key: object) -> bool:
        reads.add(str(key))
        return original[1](self, key)

    def iterate(self: Any) -> Iterator[str]:
        module = _calling_module()
        if module in KNOWN_SNAPSHOTS:
            snapshots.add(KNOWN_SNAPSHOTS[module])
        else:
            problems.append(f"{module} copies the whole environment while imported")
        return original[2](self)

    environ_class.__getitem__, environ_class.__contains__, environ_class.__iter__ = getitem, contains, iterate  # type: ignore[assignment,method-assign]
    try:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as exc:  # preloading is an optimisation: what fails is imported per task
                print(f"fork server: cannot preload {name}: {exc!r}", file=sys.stderr)
    finally:
        environ_class.__getitem__, environ_class.__contains__, environ_class.__iter__ = original  # type: ignore[method-assign]
    return reads, snapshots, problems


def _calling_module() -> str:
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name not in ("os", "_collections_abc", "collections.abc", __name__):
            return str(name)
        frame = frame.f_back  # type: ignore[assignment]
    return "?"


def _stop_background_loops() -> list[Any]:
    """Stop (and close) the SDK's background event loops, so the server has one thread; each child
    gets new ones (``task.restart_background_loops``)."""
    module = sys.modules.get("flyte.syncify._api")
    if module is None:
        return []
    import gc

    kind = module._BackgroundLoop  # by type: isinstance() would wake the SDK's lazy modules
    loops = [item for item in gc.get_objects() if type(item) is kind]
    for background in loops:
        background.loop.call_soon_threadsafe(background.loop.stop)
        background.thread.join(timeout=5)
        if not background.thread.is_alive():
            background.loop.close()
    return loops


class _Server:
    """The loop: requests on the control socket, children's ends through SIGCHLD."""

    def __init__(self, control: socket.socket, *, startup_path: list[str]) -> None:
        self.control = control
        self.startup_path = startup_path
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, socket.socket] = {}  # pid -> its task's socket
        self.devnull = os.open(os.devnull, os.O_RDONLY)
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)

    def run(self) -> Task | None:
        """Serve until the executor closes the control socket (None), or return the task to run
        (in a forked child)."""
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
        self.selector.register(self.control, selectors.EVENT_READ, "control")
        self.selector.register(self.wake_read, selectors.EVENT_READ, "children")
        while True:
            for key, _ in self.selector.select():
                if key.data == "control":
                    message, fds, _flags, _address = socket.recv_fds(self.control, 64, 2)
                    if not message and not fds:
                        return None
                    task = self._start(fds)
                    if task is not None:
                        return task
                elif key.data == "children":
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_read, 4096)
                    self._reap()
                else:  # a task's socket: readable only when its executor side closed it
                    self.selector.unregister(key.fileobj)
                    pid = next((p for p, s in self.children.items() if s is key.fileobj), None)
                    if pid is not None:
                        self.children.pop(pid).close()

    def _start(self, fds: list[int]) -> Task | None:
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            return None
        conn, log_fd = socket.socket(fileno=fds[0]), fds[1]
        try:
            conn.settimeout(REQUEST_TIMEOUT_SECONDS)
            request = Lines(conn).next()
            if request is None:
                raise OSError("no request")
            command = Command(**request["command"])
        except (OSError, ValueError, TypeError, KeyError):
            os.close(log_fd)
            conn.close()
            return None
        status_read, status_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(status_read)
            try:
                self._become_task(conn, log_fd, cwd=request["cwd"], env=request["env"])
                os.write(status_write, b"ok")
                os.close(status_write)
            except BaseException as exc:
                number = getattr(exc, "errno", None) or 0
                os.write(status_write, json.dumps({"error": f"{exc}", "errno": number}).encode())
                os._exit(255)
            return Task(command, self.startup_path)
        os.close(status_write)
        os.close(log_fd)
        status = b""
        while chunk := os.read(status_read, 65536):
            status += chunk
        os.close(status_read)
        try:
            if status == b"ok":
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                conn.setblocking(False)
                self.children[pid] = conn
                self.selector.register(conn, selectors.EVENT_READ, "task")
                return None
            os.waitpid(pid, 0)
            conn.sendall((status or b'{"error": "the child failed to start"}') + b"\n")
        except OSError:
            pass
        self.children.pop(pid, None)
        conn.close()
        return None

    def _become_task(self, conn: socket.socket, log_fd: int, *, cwd: str, env: dict[str, str]) -> None:
        """In the child: let go of the server, and set up what Popen would have."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        self.control.close()
        for other in self.children.values():
            other.close()
        conn.close()
        os.close(self.wake_read)
        os.close(self.wake_write)
        os.setsid()  # its own session and process group, as start_new_session=True
        os.chdir(cwd)
        os.dup2(self.devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.close(self.devnull)
        os.environ.clear()
        os.environ.update(env)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            with contextlib.suppress(OSError, KeyError, ValueError):
                self.selector.unregister(conn)
            with contextlib.suppress(OSError):
                conn.setblocking(True)
                conn.sendall(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
            conn.close()
