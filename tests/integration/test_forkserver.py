"""The local executor's fork server against the plain start it replaces: real processes, no servers.

Every command is run both ways and what it sees (its environment, folder, argv, sys.path, flags,
``__main__``) must be the same; what a task leaves (its exit code, its log) too. Tasks are killed
with their process group, tasks whose environment differs in anything the SDK read at import are
started the plain way, and so is every task once the server is gone.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack.executor.process import Launcher, TaskProcess, launch
from local_stack.forkserver import ForkServer, parse_command
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

PYTHON = str(Path(sys.executable).parent / "python")

# What a command sees, printed as one JSON line; the folder it runs in is written as <cwd>.
PROBE = textwrap.dedent(
    """
    import json, os, sys
    import __main__
    cwd = os.getcwd()
    def plain(value):
        return json.loads(json.dumps(value).replace(cwd, "<cwd>"))
    print(json.dumps(plain({
        "env": dict(os.environ), "argv": sys.argv, "path": sys.path, "executable": sys.executable,
        "flags": list(sys.flags), "main": sorted(vars(__main__)), "file": getattr(__main__, "__file__", None),
        "loader": type(__main__.__loader__).__name__ if __main__.__loader__ else None,
        "stdin": sys.stdin.read(), "cwd": cwd,
    })))
    """
)


@pytest.fixture(scope="module")
def base_env() -> dict[str, str]:
    return {**os.environ, "FROM_SERVER": "server-only", "SHARED": "server"}


@pytest.fixture(scope="module")
def server(base_env, tmp_path_factory) -> Iterator[ForkServer]:
    fork_server = ForkServer(
        interpreter=PYTHON, environment=base_env, work_dir=tmp_path_factory.mktemp("forkserver")
    ).start()
    assert fork_server.wait_ready(), fork_server.problem
    yield fork_server
    fork_server.stop()


def run_both(
    server: ForkServer, argv: list[str], env: dict[str, str], folder: Path
) -> dict[str, tuple[int | None, str]]:
    """The command started the plain way and forked, each in a folder of its own: exit code and log."""
    results = {}
    for way in ("plain", "forked"):
        cwd = folder / way
        cwd.mkdir()
        log = folder / f"{way}.log"
        if way == "plain":
            process = launch(argv, cwd=cwd, env=env, log_file=log)
        else:
            forked = server.launch(argv, cwd=cwd, env=env, log_file=log)
            assert forked is not None, "not forked"
            process = TaskProcess(forked)
        returncode = process.wait(30)
        results[way] = (returncode, log.read_text())
    return results


def task_env(base_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {name: value for name, value in base_env.items() if name != "FROM_SERVER"}
    return {**env, "SHARED": "task", **extra}


def test_a_forked_command_sees_exactly_what_a_plain_start_gives(server, base_env, tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    console = tmp_path / "bin" / "console-probe"  # a console script, as `a0` is
    console.parent.mkdir()
    console.write_text(f"#!{PYTHON}\n{PROBE}")
    console.chmod(0o755)
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "probe_module.py").write_text(PROBE)
    env = task_env(base_env, TASK_ONLY="yes", TASK_EXTRA="not read at import")
    commands = {
        "-c": [PYTHON, "-c", PROBE, "first", "--second"],
        "script": [PYTHON, str(script), "first"],
        "console script": [str(console), "--inputs", "s3://bucket/inputs.pb"],
    }
    for name, argv in commands.items():
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        results = run_both(server, argv, env, folder)
        (plain_code, plain_log), (forked_code, forked_log) = results["plain"], results["forked"]
        assert plain_code == forked_code == 0, (name, plain_log, forked_log)
        plain, forked = json.loads(plain_log), json.loads(forked_log)
        assert forked == plain, name
        assert forked["env"] == env and "FROM_SERVER" not in forked["env"]
        assert forked["cwd"] == "<cwd>" and forked["stdin"] == ""

    # -m: sys.path[0] is the folder it runs in, where the module is found
    folder = tmp_path / "module"
    folder.mkdir()
    for way in ("plain", "forked"):
        (folder / way).mkdir()
        (folder / way / "probe_module.py").write_text(PROBE)
    argv = [PYTHON, "-m", "probe_module", "arg"]
    seen = {}
    for way in ("plain", "forked"):
        log = folder / f"{way}.log"
        if way == "plain":
            process = launch(argv, cwd=folder / way, env=env, log_file=log)
        else:
            forked = server.launch(argv, cwd=folder / way, env=env, log_file=log)
            assert forked is not None
            process = TaskProcess(forked)
        assert process.wait(30) == 0, log.read_text()
        seen[way] = json.loads(log.read_text())
    assert seen["forked"] == seen["plain"]
    assert seen["forked"]["argv"] == ["<cwd>/probe_module.py", "arg"] and seen["forked"]["path"][0] == "<cwd>"


def test_concurrent_tasks_each_see_only_their_own_environment(server, base_env, tmp_path):
    program = "import os, time; time.sleep(0.3); print(os.environ['TASK_VALUE'], os.environ.get('FROM_SERVER'))"
    processes = []
    for number in range(4):
        cwd = tmp_path / str(number)
        cwd.mkdir()
        forked = server.launch(
            [PYTHON, "-c", program],
            cwd=cwd,
            env=task_env(base_env, TASK_VALUE=f"value-{number}"),
            log_file=tmp_path / f"{number}.log",
        )
        assert forked is not None
        processes.append(TaskProcess(forked))
    assert len({process.pid for process in processes}) == 4
    for number, process in enumerate(processes):
        assert process.wait(30) == 0
        assert (tmp_path / f"{number}.log").read_text() == f"value-{number} None\n"


def test_a_task_whose_environment_changes_what_the_sdk_read_at_import_starts_the_plain_way(server, base_env, tmp_path):
    # flyte.types._type_engine keeps _F_TE_MAX_COROS in a constant while imported: a forked child
    # would keep the server's value
    program = "import flyte.types._type_engine as engine; print(engine._TYPE_ENGINE_COROS_BATCH_SIZE)"
    env = task_env(base_env, _F_TE_MAX_COROS="3")
    command = parse_command([PYTHON, "-c", program], interpreter=PYTHON)
    assert command is not None
    assert server.divergence(command, env) == "_F_TE_MAX_COROS differs from the fork server's"
    assert server.launch([PYTHON, "-c", program], cwd=tmp_path, env=env, log_file=tmp_path / "x.log") is None
    process = Launcher(server).launch([PYTHON, "-c", program], cwd=tmp_path, env=env, log_file=tmp_path / "task.log")
    assert process.wait(30) == 0
    assert (tmp_path / "task.log").read_text() == "3\n"

    # an interpreter variable (read before any Python code runs) also keeps a task off the server
    assert server.divergence(command, {**env, "PYTHONPATH": "/x"}) is not None


def test_the_sdks_log_levels_are_those_of_the_tasks_environment(server, base_env, tmp_path):
    # flyte._logging sets its loggers' levels from LOG_LEVEL and USER_LOG_LEVEL while imported; the
    # SDK puts LOG_LEVEL in every task's environment, and a forked child re-applies both
    program = (
        "import logging, flyte._logging\n"
        "for name in ('flyte', 'flyte.user'):\n"
        "    found = logging.getLogger(name)\n"
        "    print(name, found.level, [handler.level for handler in found.handlers])"
    )
    env = task_env(base_env, LOG_LEVEL="10", USER_LOG_LEVEL="error")
    results = run_both(server, [PYTHON, "-c", program], env, tmp_path)
    assert results["forked"] == results["plain"]
    assert results["forked"][1] == "flyte 10 [10]\nflyte.user 40 [40]\n"


def test_exit_codes_and_logs_are_those_of_a_plain_start(server, base_env, tmp_path):
    env = task_env(base_env)
    programs = {
        "exit code": ("print('before'); raise SystemExit(3)", 3, ["before"]),
        "exit message": ("raise SystemExit('gave up')", 1, ["gave up"]),
        "exception": ("def fail():\n    raise ValueError('boom')\nfail()", 1, ["ValueError: boom", 'File "<string>"']),
        "killed": ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL, []),
        "threads and atexit": (
            "import atexit, threading, time\n"
            "atexit.register(lambda: print('atexit ran', flush=True))\n"
            "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done', flush=True))).start()",
            0,
            ["thread done", "atexit ran"],
        ),
    }
    for name, (program, code, expected) in programs.items():
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        results = run_both(server, [PYTHON, "-c", program], env, folder)
        assert results["plain"][0] == results["forked"][0] == code, (name, results)
        for text in expected:
            assert text in results["forked"][1], (name, results["forked"][1])
        assert "forkserver" not in results["forked"][1], results["forked"][1]  # no frames of the server

    log = tmp_path / "appended.log"
    log.write_text("earlier attempt\n")
    forked = server.launch([PYTHON, "-c", "print('later')"], cwd=tmp_path, env=env, log_file=log)
    assert forked is not None and TaskProcess(forked).wait(30) == 0
    assert log.read_text() == "earlier attempt\nlater\n"


def test_terminate_kills_the_task_and_everything_it_started(server, base_env, tmp_path):
    program = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(os.getpid(), os.getpgid(0), child.pid, flush=True)\n"
        "time.sleep(60)"
    )
    forked = server.launch([PYTHON, "-c", program], cwd=tmp_path, env=task_env(base_env), log_file=tmp_path / "log")
    assert forked is not None
    process = TaskProcess(forked)
    line = wait_for(lambda: (tmp_path / "log").read_text().strip(), timeout=20, what="the task's pids")
    pid, group, grandchild = map(int, line.split())
    assert pid == group == process.pid  # the leader of its own process group
    assert os.getsid(pid) == pid
    assert process.poll() is None
    started = time.monotonic()
    process.terminate()
    assert time.monotonic() - started < 3  # SIGTERM was enough
    assert process.poll() == -signal.SIGTERM
    wait_for(lambda: not os.path.exists(f"/proc/{grandchild}") or _zombie(grandchild), timeout=5, what="grandchild")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_what_cannot_be_started_fails_as_a_plain_start_does(server, base_env, tmp_path):
    with pytest.raises(FileNotFoundError):
        server.launch([PYTHON, "-c", "pass"], cwd=tmp_path / "missing", env=task_env(base_env), log_file=tmp_path / "l")
    with pytest.raises(FileNotFoundError):
        launch([PYTHON, "-c", "pass"], cwd=tmp_path / "missing", env=task_env(base_env), log_file=tmp_path / "l")
    # another program, or the interpreter with options of its own: started the plain way
    assert parse_command(["/bin/echo", "hi"], interpreter=PYTHON) is None
    assert parse_command([PYTHON, "-u", "-c", "pass"], interpreter=PYTHON) is None
    assert parse_command(["python", "-c", "pass"], interpreter=PYTHON) is None  # not resolved: plain
    process = Launcher(server).launch(
        ["/bin/echo", "hi"], cwd=tmp_path, env=task_env(base_env), log_file=tmp_path / "e"
    )
    assert process.wait(10) == 0 and (tmp_path / "e").read_text() == "hi\n"


def test_once_the_server_is_gone_tasks_start_the_plain_way(base_env, tmp_path):
    fork_server = ForkServer(interpreter=PYTHON, environment=base_env, work_dir=tmp_path / "server").start()
    assert fork_server.wait_ready()
    launcher = Launcher(fork_server)
    running = launcher.launch(
        [PYTHON, "-c", "import time; time.sleep(1); print('done')"], cwd=tmp_path, env=base_env, log_file=tmp_path / "a"
    )
    assert fork_server._process is not None
    os.kill(fork_server._process.pid, signal.SIGKILL)  # the server dies under a running task
    assert running.wait(20) is not None  # its end is still seen (the code is lost with the server)
    assert (tmp_path / "a").read_text() == "done\n"
    threads = threading.active_count()
    process = launcher.launch([PYTHON, "-c", "print('plain')"], cwd=tmp_path, env=base_env, log_file=tmp_path / "b")
    assert process.wait(30) == 0 and (tmp_path / "b").read_text() == "plain\n"
    assert fork_server.problem is not None
    assert threading.active_count() == threads
    launcher.stop()
