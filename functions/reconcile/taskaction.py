"""An action record -> the TaskAction custom resource Flyte's executor reconciles (pure logic).

Mirrors Flyte's actions service (flyte-anchor.md §4.1-4.3): the resource is ``<run>-<action>`` in
one namespace, labelled ``flyte.org/{project,domain,run,action,action-type,is-root}``; a root
projects its RunSpec (env vars, interruptible, labels that do not shadow Flyte's, annotations);
the task template travels serialized, with ``{{.runStartTime}}`` in container args replaced by
the run's start time.
"""

from __future__ import annotations

import base64
from datetime import UTC
from typing import Any

from flyteidl2.core.tasks_pb2 import TaskTemplate
from flyteidl2.task.run_pb2 import RunSpec
from flyteidl2.workflow.run_definition_pb2 import ActionSpec

from runplane.identifiers import taskaction_name
from runplane.records import ActionRecord

GROUP = "flyte.org"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TaskAction"
PLURAL = "taskactions"

LABEL_PROJECT = "flyte.org/project"
LABEL_DOMAIN = "flyte.org/domain"
LABEL_RUN = "flyte.org/run"
LABEL_ACTION = "flyte.org/action"
LABEL_ACTION_TYPE = "flyte.org/action-type"
LABEL_IS_ROOT = "flyte.org/is-root"
IDENTITY_LABELS = (LABEL_PROJECT, LABEL_DOMAIN, LABEL_RUN, LABEL_ACTION)

RUN_START_TIME_PLACEHOLDER = "{{.runStartTime}}"
INPUTS_FILE_SUFFIX = "/inputs.pb"


def build_taskaction(record: ActionRecord, *, namespace: str) -> dict[str, Any]:
    """The TaskAction body for a task action (a root, for now: children come with their owners)."""
    key = record.key
    action_spec = ActionSpec.FromString(record.action_spec)
    run_spec = RunSpec.FromString(record.run_spec) if record.run_spec else action_spec.run_spec
    task = action_spec.task
    template = substitute_run_start_time(task.spec.task_template, run_spec)

    labels = {
        LABEL_PROJECT: key.project,
        LABEL_DOMAIN: key.domain,
        LABEL_RUN: key.run,
        LABEL_ACTION: key.name,
        LABEL_ACTION_TYPE: "task",
        LABEL_IS_ROOT: "true" if record.is_root else "false",
    }
    spec: dict[str, Any] = {
        "project": key.project,
        "domain": key.domain,
        "runName": key.run,
        "actionName": key.name,
        "actionType": "task",
        "inputUri": input_directory(action_spec.input_uri),
        "runOutputBase": action_spec.run_output_base,
        "taskType": template.type,
        "taskTemplate": base64.b64encode(template.SerializeToString()).decode(),
    }
    if task.spec.short_name:
        spec["shortName"] = task.spec.short_name
    if record.parent:
        spec["parentActionName"] = record.parent
    if task.HasField("cache_key") and task.cache_key.value:
        spec["cacheKey"] = task.cache_key.value
    if action_spec.group:
        spec["group"] = action_spec.group

    annotations: dict[str, str] = {}
    if record.is_root:
        envs = {pair.key: pair.value for pair in run_spec.envs.values}
        if envs:
            spec["envVars"] = envs
        if run_spec.HasField("interruptible"):
            spec["interruptible"] = run_spec.interruptible.value
        for name, value in run_spec.labels.values.items():
            labels.setdefault(name, value)  # Flyte's own labels cannot be overridden
        annotations.update(run_spec.annotations.values)

    metadata: dict[str, Any] = {
        "name": taskaction_name(key.run, key.name),
        "namespace": namespace,
        "labels": labels,
    }
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def input_directory(input_uri: str) -> str:
    """The executor reads ``<inputUri>/inputs.pb``; the ActionSpec records the file itself."""
    return input_uri[: -len(INPUTS_FILE_SUFFIX)] if input_uri.endswith(INPUTS_FILE_SUFFIX) else input_uri


def substitute_run_start_time(template: TaskTemplate, run_spec: RunSpec) -> TaskTemplate:
    if not run_spec.HasField("run_start_time") or not template.container.args:
        return template
    if not any(RUN_START_TIME_PLACEHOLDER in arg for arg in template.container.args):
        return template
    start = run_spec.run_start_time.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rendered = TaskTemplate()
    rendered.CopyFrom(template)
    rendered.container.ClearField("args")
    rendered.container.args.extend(arg.replace(RUN_START_TIME_PLACEHOLDER, start) for arg in template.container.args)
    return rendered


def identity_of(resource: dict[str, Any]) -> tuple[str, ...]:
    """Which action a resource belongs to, from Flyte's labels."""
    labels = resource.get("metadata", {}).get("labels") or {}
    return tuple(labels.get(label, "") for label in IDENTITY_LABELS)
