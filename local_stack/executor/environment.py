"""The environment of a task process: what a Flyte task pod's container gets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flyteidl2.core import tasks_pb2

# Flyte OSS has no organisations; its executor gives every task pod _U_ORG_NAME=local.
ORG_NAME = "local"
# What a process needs from the host to start at all, and what a container gets from its image and
# runtime rather than from Flyte: the search path (the venv's bin first, as an image's PATH has its
# Python) and a home. Nothing else of the host's environment reaches a task.
HOST_VARIABLES = ("PATH", "HOME")


def task_environment_of(
    *,
    spec: dict[str, Any],
    template: tasks_pb2.TaskTemplate,
    attempt: int,
    pod_name: str,
    platform: dict[str, str],
    bin_dir: Path,
) -> dict[str, str]:
    """What a Flyte task pod's container gets, in the order Kubernetes applies it (later wins):
    the template's env, the execution variables (flytek8s GetExecutionEnvVars), the executor's
    (task_exec_metadata.go: ACTION_NAME, RUN_NAME, _U_RUN_BASE, _U_ORG_NAME, then the run's env
    vars without overriding those), and the platform's defaults (``task_environment``: what the
    executor's default pod environment or a pod template gives, here the API endpoint, the bucket's
    and the credentials' settings). Of the host, only HOST_VARIABLES, and HOSTNAME the pod's name,
    as Kubernetes sets it."""
    environment = {name: os.environ[name] for name in HOST_VARIABLES if name in os.environ}
    environment["PATH"] = os.pathsep.join(filter(None, [str(bin_dir), environment.get("PATH", os.defpath)]))
    environment["HOSTNAME"] = pod_name
    environment.update({pair.key: pair.value for pair in template.container.env})
    task_id = template.id
    environment.update(
        {
            "FLYTE_INTERNAL_EXECUTION_ID": spec["runName"],
            "FLYTE_INTERNAL_EXECUTION_PROJECT": spec["project"],
            "FLYTE_INTERNAL_EXECUTION_DOMAIN": spec["domain"],
            "_F_PN": pod_name,
            "FLYTE_ATTEMPT_NUMBER": str(attempt - 1),  # Flyte's retry attempt, 0-based
            "FLYTE_INTERNAL_TASK_PROJECT": task_id.project,
            "FLYTE_INTERNAL_TASK_DOMAIN": task_id.domain,
            "FLYTE_INTERNAL_TASK_NAME": task_id.name,
            "FLYTE_INTERNAL_TASK_VERSION": task_id.version,
            "FLYTE_INTERNAL_PROJECT": task_id.project,
            "FLYTE_INTERNAL_DOMAIN": task_id.domain,
            "FLYTE_INTERNAL_NAME": task_id.name,
            "FLYTE_INTERNAL_VERSION": task_id.version,
        }
    )
    executor = {
        "ACTION_NAME": spec["actionName"],
        "RUN_NAME": spec["runName"],
        "_U_RUN_BASE": spec["runOutputBase"],
        "_U_ORG_NAME": ORG_NAME,
    }
    for name, value in (spec.get("envVars") or {}).items():
        executor.setdefault(name, str(value))
    environment.update(executor)
    environment.update(platform)
    return environment
