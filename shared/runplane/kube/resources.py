"""TaskAction coordinates and labels: Flyte's, and the two this control plane adds.

Flyte's (docs/flyte-compat.md#taskaction-resources): ``flyte.org/{project,domain,run,action,action-type,
is-root}`` identify the action; the executor adds state labels, and the status mirror adds
``flyte.org/terminal-status-recorded`` once the terminal phase is in the table, as Flyte's actions
service does.

This control plane's own, under ``runplane/``:

- ``runplane/mirror-shard``: which status-mirror shard watches the resource, a stable hash of the
  run modulo the shard count, so a run's resources (and their parent promotions) stay with one
  watcher, and N watchers split the namespace with one lease each;
- ``app.kubernetes.io/managed-by: runplane``: resources this control plane created; anything else
  in the namespace is foreign to it and skipped.
"""

from __future__ import annotations

import zlib
from typing import Any

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

LABEL_TERMINAL_RECORDED = "flyte.org/terminal-status-recorded"
LABEL_TERMINATION_STATUS = "flyte.org/termination-status"
LABEL_COMPLETED_TIME = "flyte.org/completed-time"
# Labels about one resource's state (the executor's, the mirror's); a child must not inherit them.
STATE_LABELS = frozenset({LABEL_TERMINAL_RECORDED, LABEL_TERMINATION_STATUS, LABEL_COMPLETED_TIME})

LABEL_MIRROR_SHARD = "runplane/mirror-shard"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "runplane"


def mirror_shard(run: str, *, shards: int) -> int:
    """The status-mirror shard of a run's resources: stable across processes (crc32, not hash())."""
    return zlib.crc32(run.encode()) % max(1, shards)


def identity_of(resource: dict[str, Any]) -> tuple[str, ...]:
    """Which action a resource belongs to, from Flyte's labels (empty strings where missing)."""
    labels = resource.get("metadata", {}).get("labels") or {}
    return tuple(labels.get(label, "") for label in IDENTITY_LABELS)
