"""The real `flyte` CLI, as a new user types it, against the local stack: every command that
concerns this control plane, run as a subprocess, its exit code and what it prints.

The CLI is pointed at the stack the documented way: `flyte create config --endpoint ... --insecure`
writes a config file, and every command gets `--config <file>` (plain HTTP, no authentication).
Runs whose logs and outputs are read execute for real: the data plane (the local executor and the
status mirror) is on for those tests. No answer may be `internal` or `unknown`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runplane.flyte import phases
from runplane.flyte.identifiers import RunKey
from runplane.table.actions import ActionStore
from tests.builders import DOMAIN, PROJECT, child_task_action
from tests.conftest import unique_name, wait_for
from tests.e2e.test_create_run_http import post_json, post_proto_gzip

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
FLYTE = str(Path(sys.executable).parent / "flyte")
TASKS = "tests/e2e/sdk_tasks/cli_tasks.py"
ENQUEUE = "/flyteidl2.actions.ActionsService/Enqueue"
# What no answer of this control plane may be (`unknown` also makes the CLI start a login).
FORBIDDEN = re.compile(r"\binternal\b|\bunknown\b|Internal server error|RPC error", re.IGNORECASE)
CLI_TIMEOUT_SECONDS = 180
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Cli:
    def __init__(self, config: Path, home: Path) -> None:
        self.config = config
        self._env = {name: value for name, value in os.environ.items() if not name.startswith(("FLYTE", "_U_", "_F_"))}
        # wide enough that tables never wrap an id (a dumb TERM would force 80 columns)
        self._env.update({"HOME": str(home), "COLUMNS": "250", "NO_COLOR": "1", "TERM": "xterm"})

    def __call__(self, *args: str, ok: bool = True, timeout: float = CLI_TIMEOUT_SECONDS) -> str:
        """Run `flyte --config <file> <args>`; its output (stdout and stderr). ``ok``: it must
        exit 0 (False: it must not)."""
        completed = subprocess.run(
            [FLYTE, "--config", str(self.config), *args],
            cwd=REPO,
            env=self._env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = ANSI_ESCAPE.sub("", completed.stdout + completed.stderr)  # rich styles even without colours
        shown = f"flyte {' '.join(args)} exited {completed.returncode}:\n{output}"
        assert (completed.returncode == 0) == ok, shown
        assert not FORBIDDEN.search(output), shown
        return output


@pytest.fixture(scope="module")
def cli(stack, tmp_path_factory) -> Cli:
    home = tmp_path_factory.mktemp("cli-home")
    config = home / "config.yaml"
    created = subprocess.run(
        [
            FLYTE,
            "create",
            "config",
            "--endpoint",
            stack.endpoint,
            "--insecure",
            "--project",
            PROJECT,
            "--domain",
            DOMAIN,
            "--output",
            str(config),
            "--force",
        ],
        cwd=home,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        env={**os.environ, "HOME": str(home)},
    )
    assert created.returncode == 0 and config.exists(), created.stdout + created.stderr
    return Cli(config, home)


@pytest.fixture(scope="module")
def store(stack) -> ActionStore:
    return ActionStore(table_name=stack.aws.table_name)


@pytest.fixture
def data_plane(stack) -> Iterator[None]:
    """The executor and the status mirror, for one test: the others need runs that never run."""
    with stack.data_plane():
        yield


def run_name_of(output: str) -> str:
    match = re.search(r"Created Run: (\S+)", output)
    assert match, output
    return match.group(1)


def phase_of(store: ActionStore, run: str, action: str = "a0") -> int | None:
    record = store.get_action(RunKey(PROJECT, DOMAIN, run).action(action))
    return record.phase if record else None


def wait_until_ended(store: ActionStore, run: str, *, timeout: float = 120.0) -> int:
    ended: Callable[[], int | None] = lambda: (  # noqa: E731
        phase if (phase := phase_of(store, run)) is not None and phases.is_terminal(phase) else None
    )
    return int(wait_for(ended, timeout=timeout, interval=0.5, what=f"run {run} to end"))


# --- projects ----------------------------------------------------------------------------------


def test_create_get_update_and_archive_a_project(cli):
    project = unique_name("cli")
    out = cli("create", "project", "--id", project, "--name", "CLI project", "--description", "made by the CLI")
    assert f"Project {project} created" in out
    out = cli("get", "project", project)
    assert project in out and "CLI project" in out and "PROJECT_STATE_ACTIVE" in out
    assert project in cli("get", "project") and PROJECT in cli("get", "project")

    out = cli("update", "project", project, "--description", "changed", "--label", "team=ml")
    assert "description updated" in out and "labels updated" in out
    out = cli("get", "project", project)
    assert "changed" in out and "team: ml" in out

    assert "archived" in cli("update", "project", project, "--archive")
    assert project not in cli("get", "project")
    assert project in cli("get", "project", "--archived")
    assert "PROJECT_STATE_ARCHIVED" in cli("get", "project", project)
    assert "unarchived" in cli("update", "project", project, "--unarchive")
    assert project in cli("get", "project")

    assert "already exists" in cli("create", "project", "--id", project, "--name", "again", ok=False).lower()
    assert "not found" in cli("get", "project", unique_name("nope"), ok=False).lower()


# --- runs, actions, io and logs (the data plane runs them) --------------------------------------


def test_run_remotely_then_get_the_run_its_actions_io_and_logs(cli, store, data_plane):
    word = uuid.uuid4().hex[:8]
    out = cli("run", "--root-dir", str(REPO), TASKS, "shout", "--text", word)
    run = run_name_of(out)
    assert wait_until_ended(store, run) == phases.SUCCEEDED

    out = cli("get", "run", run)
    assert run in out and "SUCCEEDED" in out.upper()
    assert run in cli("get", "run")

    out = cli("get", "action", run)  # ListActions: the CLI sorts by created_at
    assert "a0" in out and run in out
    out = cli("get", "action", run, "--in-phase", "succeeded")
    assert "a0" in out
    out = cli("get", "action", run, "a0")
    assert "a0" in out and "shout" in out

    out = cli("get", "io", run)
    assert word in out and word.upper() in out

    out = cli("get", "logs", run)
    assert f"shouting {word}" in out
    out = cli("get", "logs", run, "a0", "--attempt", "1")
    assert f"shouting {word}" in out


def test_logs_of_an_attempt_that_never_ran_are_not_found(cli, store, stack):
    out = cli("run", "--root-dir", str(REPO), TASKS, "shout", "--text", "never")  # no data plane: never runs
    run = run_name_of(out)
    assert "aborted" in cli("abort", "run", run).lower()
    assert phase_of(store, run) == phases.ABORTED
    out = cli("get", "logs", run, ok=False, timeout=120)  # the SDK retries not_found, then gives up
    assert "not available" in out.lower()


def test_abort_a_run_and_an_action(cli, store, stack):
    run = run_name_of(cli("run", "--root-dir", str(REPO), TASKS, "shout", "--text", "abort"))
    assert post_proto_gzip(stack, child_task_action(run, "c1"), ENQUEUE)[0] == 200
    assert "aborted" in cli("abort", "action", run, "c1").lower()
    # Aborting an action leaves its run going: the run may still be queued or already running.
    assert phase_of(store, run, "c1") == phases.ABORTED and not phases.is_terminal(phase_of(store, run))
    cli("abort", "run", run, "--reason", "enough")
    assert phase_of(store, run) == phases.ABORTED
    assert "NOT FOUND" in cli("abort", "run", unique_name(), ok=False)


# --- tasks and triggers --------------------------------------------------------------------------


def test_deploy_then_get_tasks(cli):
    version = f"v{uuid.uuid4().hex[:10]}"
    out = cli("deploy", "--root-dir", str(REPO), "--version", version, TASKS, "env")
    assert "cli_env.shout" in out
    assert "cli_env.shout" in cli("get", "task")
    out = cli("get", "task", "cli_env.shout")
    assert "cli_env.shout" in out and version in out
    out = cli("get", "task", "cli_env.shout", version)
    assert "cli_env.shout" in out and version in out
    assert "cli_env.shout" in cli("get", "task", "--entrypoint")


def test_trigger_commands(cli):
    cli("deploy", "--root-dir", str(REPO), "--version", f"v{uuid.uuid4().hex[:10]}", TASKS, "env")
    name = unique_name("tr")
    out = cli("create", "trigger", "cli_env.nightly", name, "--schedule", "0 3 * * *")
    assert f"Trigger {name} created" in out
    assert name in cli("get", "trigger")
    assert name in cli("get", "trigger", "cli_env.nightly")
    out = cli("get", "trigger", "cli_env.nightly", name)
    assert name in out and "0 3 * * *" in out
    assert "deactivate" in cli("update", "trigger", name, "cli_env.nightly", "--deactivate")
    assert "active" in cli("update", "trigger", name, "cli_env.nightly", "--activate")
    assert name in cli("delete", "trigger", name, "cli_env.nightly")
    assert name not in cli("get", "trigger")
    assert "NOT FOUND" in cli("get", "trigger", "cli_env.nightly", name, ok=False)


# --- what this control plane does not serve ---------------------------------------------------


def flyte_procedures() -> list[str]:
    """Every procedure of the flyteidl2 services a Flyte client has a Connect stub for."""
    import importlib
    import pkgutil

    import flyteidl2

    found: list[str] = []
    for module in pkgutil.walk_packages(flyteidl2.__path__, "flyteidl2."):
        if module.name.endswith("_connect"):
            descriptors = importlib.import_module(module.name.removesuffix("_connect") + "_pb2").DESCRIPTOR
            for service in descriptors.services_by_name.values():
                found.extend(f"{service.full_name}/{method.name}" for method in service.methods)
    return sorted(found)


def test_every_procedure_not_served_is_unimplemented_and_named(stack):
    from local_stack.template import http_routes

    served = {route.path.lstrip("/") for route in http_routes()}
    missing = [procedure for procedure in flyte_procedures() if procedure not in served]
    assert (
        "flyteidl2.app.AppService/Create" in missing
        and "flyteidl2.workflow.RunService/SignalEvent" not in missing
        and "flyteidl2.project.ProjectService/GetProject" not in missing
    )
    for procedure in missing:
        status, _, body = post_json(stack, b"{}", path=f"/{procedure}")
        error = json.loads(body)
        assert status == 501 and error["code"] == "unimplemented" and procedure in error["message"], (procedure, body)
