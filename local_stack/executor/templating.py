"""Where an attempt reads and writes, and the command it runs: Flyte's task execution context and
template.Render over the container's command and args."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flyteidl2.core import tasks_pb2
from flyteidl2.task import common_pb2 as task_common_pb2

from runplane.flyte.output_paths import action_output_path


@dataclass(frozen=True)
class AttemptPaths:
    """Flyte's task execution context for one attempt (task_exec_context.go)."""

    input_prefix: str
    output_prefix: str
    previous_checkpoint_prefix: str  # "" on the first attempt

    @classmethod
    def of(cls, *, namespace: str, spec: dict[str, Any], attempt: int) -> AttemptPaths:
        def output_prefix(number: int) -> str:
            return action_output_path(
                namespace=namespace,
                project=spec["project"],
                domain=spec["domain"],
                run=spec["runName"],
                action=spec["actionName"],
                run_output_base=spec["runOutputBase"],
                attempt=number,
            )

        input_prefix = spec["inputUri"].rstrip("/").removesuffix("/inputs.pb")
        previous = _checkpoint_prefix(output_prefix(attempt - 1)) if attempt >= 2 else ""
        return cls(input_prefix=input_prefix, output_prefix=output_prefix(attempt), previous_checkpoint_prefix=previous)

    @property
    def input_file(self) -> str:
        return f"{self.input_prefix}/inputs.pb"

    @property
    def raw_output_prefix(self) -> str:
        return self.output_prefix  # ioutils.NewRawOutputPaths(ctx, outputPrefix): the prefix itself

    @property
    def checkpoint_prefix(self) -> str:
        return _checkpoint_prefix(self.raw_output_prefix)

    @property
    def error_uri(self) -> str:
        return f"{self.output_prefix}/error.pb"

    def output_references(self) -> task_common_pb2.OutputReferences:
        return task_common_pb2.OutputReferences(
            output_uri=f"{self.output_prefix}/outputs.pb", report_uri=f"{self.output_prefix}/report.html"
        )


def _checkpoint_prefix(raw_output_prefix: str) -> str:
    return f"{raw_output_prefix}/_flytecheckpoints"  # ioutils.ConstructCheckpointPath


def _template_variable(name: str) -> re.Pattern[str]:
    return re.compile(r"(?i){{\s*[\.$]" + name + r"\s*}}")  # Flyte's template.go: case-insensitive


_TEMPLATE_VARIABLES = {
    name: _template_variable(name)
    for name in (
        "Input", "InputPrefix", "OutputPrefix", "RawOutputDataPrefix", "PrevCheckpointPrefix",
        "CheckpointOutputPrefix", "PerRetryUniqueKey", "Namespace",
    )
}  # fmt: skip


def render(arguments: list[str], values: dict[str, str]) -> list[str]:
    """Flyte's template.Render over command and args. ``{{.runName}}``/``{{.actionName}}`` are not
    among its variables: they stay as they are, and the SDK reads RUN_NAME/ACTION_NAME instead."""
    rendered = []
    for argument in arguments:
        for name, pattern in _TEMPLATE_VARIABLES.items():
            argument = pattern.sub(_verbatim(values[name]), argument)
        rendered.append(argument)
    return rendered


def _verbatim(value: str) -> Callable[[re.Match[str]], str]:
    """A replacement for ``re.sub`` that inserts ``value`` as it is (no escapes processed)."""
    return lambda _match: value


def template_values(*, namespace: str, spec: dict[str, Any], paths: AttemptPaths, unique_key: str) -> dict[str, str]:
    return {
        "Input": paths.input_file,
        "InputPrefix": paths.input_prefix,
        "OutputPrefix": paths.output_prefix,
        "RawOutputDataPrefix": paths.raw_output_prefix,
        # Flyte renders a missing previous checkpoint as `""` (the SDK strips the quotes).
        "PrevCheckpointPrefix": paths.previous_checkpoint_prefix or '""',
        "CheckpointOutputPrefix": paths.checkpoint_prefix,
        "PerRetryUniqueKey": re.sub(r"[^a-zA-Z0-9_]+", "_", re.sub(r"^[^a-zA-Z_]+", "a", unique_key)),
        "Namespace": namespace,
    }


def command_line(template: tasks_pb2.TaskTemplate, values: dict[str, str], bin_dir: Path) -> list[str]:
    argv = render([*template.container.command, *template.container.args], values)
    if argv and os.sep not in argv[0]:
        candidate = bin_dir / argv[0]
        if candidate.is_file() and os.access(candidate, os.X_OK):
            argv[0] = str(candidate)
    return argv
