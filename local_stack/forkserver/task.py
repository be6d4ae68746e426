"""In a forked child of the fork server: the task's command run as the interpreter would run it,
and the child's end."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any, NoReturn

from local_stack.forkserver.protocol import FLUSH_FAILURE_CODE, Command


def reapply_import_settings() -> None:
    """What the SDK's import made of ``REAPPLIED_VARIABLES``, made again from the task's values:
    the levels of the loggers (and of the handlers) flyte._logging creates while imported."""
    sdk_logging = sys.modules.get("flyte._logging")
    if sdk_logging is None:
        return
    import logging

    for name, level in (
        ("flyte", sdk_logging.get_env_log_level()),
        ("flyte.user", sdk_logging.get_env_user_log_level()),
    ):
        target = logging.getLogger(name)
        target.setLevel(level)
        for handler in target.handlers:
            handler.setLevel(level)


def restart_background_loops(loops: list[Any]) -> None:
    """New SDK background loops for the child (the server stopped and closed its own)."""
    import asyncio  # imported by the SDK anyway; not before the server's recorded preload

    for background in loops:
        background.loop = asyncio.new_event_loop()
        background.thread = threading.Thread(name=background.thread.name, target=background._run, daemon=True)
        background.thread.start()


class Task:
    """The command, run in the forked child as the interpreter would run it, and the child's end."""

    def __init__(self, command: Command, startup_path: list[str]) -> None:
        self.command = command
        self.startup_path = startup_path

    def run(self, loops: list[Any]) -> NoReturn:
        try:
            self._prepare(loops)
            self._execute()
        except SystemExit as exc:  # the interpreter's handle_system_exit
            code = exc.code
            if code is None:
                self._exit(0)
            if isinstance(code, int):
                self._exit(code)
            with contextlib.suppress(Exception):
                print(code, file=sys.stderr)
            self._exit(1)
        except KeyboardInterrupt as exc:
            self._print(exc)
            self._exit(1, signal_number=signal.SIGINT)  # as the interpreter ends on it: by SIGINT
        except BaseException as exc:
            self._print(exc)
            self._exit(1)
        self._exit(0)

    def _prepare(self, loops: list[Any]) -> None:
        import builtins
        import importlib
        import types

        command = self.command
        restart_background_loops(loops)
        reapply_import_settings()
        sys.executable = command.executable
        sys.argv = list(command.argv)
        if command.kind == "code":
            first = ""
        elif command.kind == "module":
            first = os.getcwd()
        else:
            first = os.path.dirname(os.path.realpath(command.target))
        sys.path[:] = [first, *self.startup_path[1:]]
        importlib.invalidate_caches()
        main = types.ModuleType("__main__")
        vars(main).update(__builtins__=builtins, __annotations__={})  # what a fresh __main__ holds
        sys.modules["__main__"] = main

    def _execute(self) -> None:
        import importlib.machinery

        command = self.command
        main = sys.modules["__main__"]
        if command.kind == "module":
            import runpy

            runpy._run_module_as_main(command.target)  # type: ignore[attr-defined]  # what -m runs
            return
        if command.kind == "code":
            source: str | bytes = command.target
            filename = "<string>"
            main.__loader__ = importlib.machinery.BuiltinImporter  # type: ignore[assignment]
        else:
            import io

            with io.open_code(command.target) as script:
                source = script.read()
            filename = command.target
            main.__file__ = command.target
            main.__cached__ = None  # type: ignore[attr-defined]
            main.__loader__ = importlib.machinery.SourceFileLoader("__main__", command.target)
        exec(compile(source, filename, "exec", dont_inherit=True), main.__dict__)

    @staticmethod
    def _print(exc: BaseException) -> None:
        """The uncaught exception, from the command's own frames (not the server's or runpy's)."""
        import runpy

        ours = {os.path.abspath(__file__), os.path.abspath(runpy.__file__)}
        traceback = exc.__traceback__
        while traceback is not None and os.path.abspath(traceback.tb_frame.f_code.co_filename) in ours:
            traceback = traceback.tb_next
        with contextlib.suppress(Exception):
            sys.excepthook(type(exc), exc, traceback or exc.__traceback__)

    @staticmethod
    def _exit(code: int, *, signal_number: int | None = None) -> NoReturn:
        """The interpreter's shutdown up to what a task can observe (its non-daemon threads joined,
        atexit handlers run, stdout and stderr flushed), then the end: tearing down the hundreds of
        modules inherited from the server would cost a few hundred milliseconds of copy-on-write."""
        with contextlib.suppress(BaseException):
            threading._shutdown()  # type: ignore[attr-defined]
        import atexit

        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:
                code = code or FLUSH_FAILURE_CODE
        if signal_number is not None:
            signal.signal(signal_number, signal.SIG_DFL)
            os.kill(os.getpid(), signal_number)
        os._exit(code & 0xFF)
