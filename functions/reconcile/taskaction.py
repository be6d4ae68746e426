"""An action record -> the TaskAction custom resource Flyte's executor reconciles (pure logic).

Mirrors Flyte's actions service (docs/flyte-compat.md#taskaction-resources): the resource is ``<run>-<action>`` in
one namespace, labelled ``flyte.org/{project,domain,run,action,action-type,is-root}``.

- A root projects its RunSpec: env vars, interruptible, labels that do not shadow Flyte's,
  annotations.
- A child has exactly one OwnerReference, to its parent's resource (by the uid the API server
  gave it, ``blockOwnerDeletion`` set, no ``controller`` flag), so deleting a parent lets the
  garbage collector remove the whole subtree; a task child inherits the run context from that
  resource (env vars, interruptible, labels and annotations it does not set itself).
- A task carries its template serialized, with ``{{.runStartTime}}`` in container args replaced
  by the run's start time; a condition carries its serialized ConditionAction instead.
"""

from __future__ import annotations

import base64
from datetime import UTC
from typing import Any

from flyteidl2.core.tasks_pb2 import TaskTemplate
from flyteidl2.task.run_pb2 import RunSpec
from flyteidl2.workflow.run_definition_pb2 import ActionSpec

from runplane.aws.run_tokens import RUN_TOKEN_ENV
from runplane.flyte.identifiers import taskaction_name
from runplane.kube.resources import (
    API_VERSION,
    KIND,
    LABEL_ACTION,
    LABEL_ACTION_TYPE,
    LABEL_DOMAIN,
    LABEL_IS_ROOT,
    LABEL_MANAGED_BY,
    LABEL_MIRROR_SHARD,
    LABEL_PROJECT,
    LABEL_RUN,
    MANAGED_BY,
    STATE_LABELS,
    mirror_shard,
)
from runplane.table.records import ActionRecord

RUN_START_TIME_PLACEHOLDER = "{{.runStartTime}}"
INPUTS_FILE_SUFFIX = "/inputs.pb"


def build_taskaction(
    record: ActionRecord,
    *,
    namespace: str,
    parent: dict[str, Any] | None = None,
    mirror_shards: int = 1,
    run_token: str = "",
) -> dict[str, Any]:
    """The TaskAction body of an action; a child needs its parent's resource as read from the
    API server (for the owner's uid and the run context). ``mirror_shards`` is the number of
    status-mirror shards the resource is labelled for; ``run_token`` (roots only) the run token
    its pods get as ``RUN_TOKEN_ENV`` (children inherit the root's envVars, so the run's pods all
    hold the one token of their run)."""
    key = record.key
    if record.parent and parent is None:
        raise ValueError(f"action {key} has a parent: its TaskAction needs the parent's resource")
    action_spec = ActionSpec.FromString(record.action_spec)
    action_type = "condition" if action_spec.WhichOneof("spec") == "condition" else "task"

    labels = {
        LABEL_PROJECT: key.project,
        LABEL_DOMAIN: key.domain,
        LABEL_RUN: key.run,
        LABEL_ACTION: key.name,
        LABEL_ACTION_TYPE: action_type,
        LABEL_IS_ROOT: "true" if record.is_root else "false",
        LABEL_MIRROR_SHARD: str(mirror_shard(key.run, shards=mirror_shards)),
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    spec: dict[str, Any] = {
        "project": key.project,
        "domain": key.domain,
        "runName": key.run,
        "actionName": key.name,
        "actionType": action_type,
    }
    if action_spec.input_uri:
        spec["inputUri"] = input_directory(action_spec.input_uri)
    if action_spec.run_output_base:
        spec["runOutputBase"] = action_spec.run_output_base
    if record.parent:
        spec["parentActionName"] = record.parent
    if action_spec.group:
        spec["group"] = action_spec.group
    metadata: dict[str, Any] = {"name": taskaction_name(key), "namespace": namespace, "labels": labels}

    if action_type == "condition":
        spec["conditionSpec"] = base64.b64encode(action_spec.condition.SerializeToString()).decode()
    else:
        run_spec = RunSpec.FromString(record.run_spec) if record.run_spec else action_spec.run_spec
        _embed_task(spec, action_spec, run_spec)
        if record.is_root:
            _project_run_spec(spec, metadata, run_spec)
            if run_token:  # after the run's own envs: a run cannot name its own token
                spec["envVars"] = {**spec.get("envVars", {}), RUN_TOKEN_ENV: run_token}
        else:
            assert parent is not None  # a child: its parent's resource is required above
            _inherit_run_context(spec, metadata, parent)
    if parent is not None:
        metadata["ownerReferences"] = [owner_reference(parent)]
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def owner_reference(parent: dict[str, Any]) -> dict[str, Any]:
    """Exactly Flyte's reference: no ``controller`` flag; the uid is the live parent's."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": parent["metadata"]["name"],
        "uid": parent["metadata"]["uid"],
        "blockOwnerDeletion": True,
    }


def _embed_task(spec: dict[str, Any], action_spec: ActionSpec, run_spec: RunSpec) -> None:
    task = action_spec.task
    template = substitute_run_start_time(task.spec.task_template, run_spec)
    spec["taskType"] = template.type
    spec["taskTemplate"] = base64.b64encode(template.SerializeToString()).decode()
    if task.spec.short_name:
        spec["shortName"] = task.spec.short_name
    if task.HasField("cache_key") and task.cache_key.value:
        spec["cacheKey"] = task.cache_key.value


def _project_run_spec(spec: dict[str, Any], metadata: dict[str, Any], run_spec: RunSpec) -> None:
    envs = {pair.key: pair.value for pair in run_spec.envs.values}
    if envs:
        spec["envVars"] = envs
    if run_spec.HasField("interruptible"):
        spec["interruptible"] = run_spec.interruptible.value
    for name, value in run_spec.labels.values.items():
        metadata["labels"].setdefault(name, value)  # Flyte's own labels cannot be overridden
    if run_spec.annotations.values:
        metadata["annotations"] = dict(run_spec.annotations.values)


def _inherit_run_context(spec: dict[str, Any], metadata: dict[str, Any], parent: dict[str, Any]) -> None:
    parent_spec = parent.get("spec") or {}
    if parent_spec.get("envVars"):
        spec["envVars"] = dict(parent_spec["envVars"])  # the run token too: the same run
    if "interruptible" in parent_spec:
        spec["interruptible"] = parent_spec["interruptible"]
    parent_metadata = parent.get("metadata") or {}
    for name, value in (parent_metadata.get("labels") or {}).items():
        if name not in STATE_LABELS:
            metadata["labels"].setdefault(name, value)  # the child's flyte.org/* labels stay its own
    annotations = dict(parent_metadata.get("annotations") or {})
    if annotations:
        metadata["annotations"] = annotations


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
