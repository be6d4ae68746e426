"""What the fork server's two sides share: the constants, which commands can be forked, and the
JSON lines they exchange on a task's socket."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any

PRELOAD_MODULES = (
    "flyte._bin.runtime",
    "flyte",
    "flyte.errors",
    "flyte.storage",
    "flyte._utils",
    "flyte._logging",
    "flyte._initialize",
    "flyte.models",
    "flyte._internal.controllers",
    "flyte._internal.controllers.remote",
    "flyte._internal.image_cache",
    "flyte._internal.runtime.entrypoints",
    "flyte._internal.runtime.convert",
    "flyte._internal.runtime.io",
)
# The SDK's import takes about 2 s on two busy cores; waiting longer for the first task than a
# plain start would take only wastes time, so after this the plain start is used until it is up.
READY_TIMEOUT_SECONDS = 20.0
# A request is written right after its socket is handed over: anything slower is a broken client.
REQUEST_TIMEOUT_SECONDS = 10.0
# What the interpreter reads from the environment when it starts (no Python code sees the read).
STARTUP_VARIABLE_PREFIXES = ("PYTHON", "LC_")
STARTUP_VARIABLES = ("LANG",)
# Read while the SDK is imported, but re-applied by each child once its environment is set
# (task.reapply_import_settings), so a task may differ from the server in them: flyte._logging's
# levels of its "flyte" and "flyte.user" loggers, which the SDK sets in every task's environment.
REAPPLIED_VARIABLES = ("LOG_LEVEL", "USER_LOG_LEVEL")
# Modules known to copy the whole environment while imported, and the only variables they keep.
KNOWN_SNAPSHOTS = {"fsspec.config": "FSSPEC_"}
# The exit code reported for a child whose server went away before it could report one.
LOST_RETURNCODE = 255
# CPython's exit code when flushing stdout fails at the end.
FLUSH_FAILURE_CODE = 120
HELLO_BYTES = 1 << 20  # the hello's datagram: variable names, a few kilobytes
SERVER_LOG = "forkserver.log"


@dataclass(frozen=True)
class Command:
    """How the interpreter would run a command line: ``kind`` is script, code or module."""

    executable: str  # the interpreter, as it would be invoked (its sys.executable)
    kind: str
    target: str  # the script's path, the code, or the module's name
    argv: list[str]  # sys.argv before the interpreter's own changes (runpy sets -m's argv[0])


def parse_command(argv: list[str], *, interpreter: str) -> Command | None:
    """The command ``argv`` as this ``interpreter`` would run it, or None if another program (or
    the interpreter with options) would: a plain launch is then the only faithful one."""
    if not argv or not os.path.isabs(argv[0]):
        return None
    if _same_interpreter(argv[0], interpreter):
        rest = argv[1:]
        if len(rest) >= 2 and rest[0] in ("-c", "-m"):
            kind = "code" if rest[0] == "-c" else "module"
            return Command(argv[0], kind, rest[1], [rest[0], *rest[2:]])
        if rest and not rest[0].startswith("-"):
            return Command(argv[0], "script", rest[0], rest)
        return None
    shebang = _shebang(argv[0])
    if shebang is not None and _same_interpreter(shebang, interpreter):
        return Command(shebang, "script", argv[0], list(argv))
    return None


def _same_interpreter(path: str, interpreter: str) -> bool:
    """The same binary in the same folder: a virtualenv is told apart by where it is invoked from."""
    try:
        return os.path.dirname(os.path.abspath(path)) == os.path.dirname(interpreter) and os.path.samefile(
            path, interpreter
        )
    except OSError:
        return False


def _shebang(path: str) -> str | None:
    """The interpreter of a ``#!`` script with no arguments on that line."""
    try:
        with open(path, "rb") as script:
            line = script.readline(512)
    except OSError:
        return None
    if not line.startswith(b"#!"):
        return None
    words = line[2:].decode(errors="replace").split()
    return words[0] if len(words) == 1 else None


class Lines:
    """JSON lines from a socket, with a timeout per read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def next(self, timeout: float | None = REQUEST_TIMEOUT_SECONDS) -> dict[str, Any] | None:
        """The next message; None at the end of the stream; raises TimeoutError."""
        self.sock.settimeout(timeout)
        while b"\n" not in self._buffer:
            data = self.sock.recv(65536)
            if not data:
                return None
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)
