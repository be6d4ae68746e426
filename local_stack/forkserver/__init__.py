"""A fork server for the local executor: each task process is forked from an interpreter that has
already imported the flyte SDK, instead of a fresh ``python`` that spends a second or two importing it.

The executor starts one server (``ForkServer.start``); the server imports ``PRELOAD_MODULES`` (the
SDK's ``a0`` entrypoint and everything it imports before the task's own code), then waits. For
each task the executor hands it a socket and the task's log file; the server forks, and the child
sets up what ``subprocess.Popen(argv, cwd=..., env=..., start_new_session=True)`` would give it
(its own session and process group, the folder, stdin from /dev/null, stdout and stderr to the
log, ``os.environ`` cleared and replaced, ``sys.argv``/``sys.path``/``sys.executable`` as the
interpreter would set them) and runs the command in-process, without exec. The server reports the
child's pid, then its exit code (``Popen.returncode``'s convention) when it is reaped; the child
exits through the interpreter's own shutdown (threads joined, atexit handlers run).

Only commands this interpreter would run itself are forked (``launchable``): a script whose
``#!`` line is this interpreter (a console script such as ``a0``), ``python -c CODE ...``,
``python -m MODULE ...`` or ``python SCRIPT ...``, with no interpreter options. A task whose
environment differs from the server's in anything read while importing the preloaded modules
(recorded during the import), or in anything the interpreter reads at start-up (``PYTHON*``,
``LC_*``, ``LANG``), is not forked: a cached stale value could change what it does. The caller
then starts it the plain way, as it does when the server is not (yet, or any longer) available.

Forking is only safe from a single-threaded process: the server never starts a thread, stops the
SDK's background event loop (``flyte.syncify``) after the import and gives each child a new one,
and refuses to serve (its hello says why) if any other thread is left.
"""

from local_stack.forkserver.client import ForkedProcess, ForkServer
from local_stack.forkserver.protocol import (
    KNOWN_SNAPSHOTS,
    PRELOAD_MODULES,
    READY_TIMEOUT_SECONDS,
    Command,
    parse_command,
)

__all__ = [
    "KNOWN_SNAPSHOTS",
    "PRELOAD_MODULES",
    "READY_TIMEOUT_SECONDS",
    "Command",
    "ForkServer",
    "ForkedProcess",
    "parse_command",
]
