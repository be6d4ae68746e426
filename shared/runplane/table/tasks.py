"""The task registry's items: deployed task specs, one per (project, domain, name, version).

Same table as the runs, own partitions: ``pk = TASKS#<project>#<domain>``, ``sk = <name>#<version>``.
A project's tasks are one Query; a task's versions one Query with a prefix; a version one
GetItem. Deploys are rare next to runs, so one partition per project and domain is no hot spot.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runplane.table.records import _AttributeReader, format_time, parse_time, utcnow
from runplane.table.registry import RegistryItems
from runplane.table.specs import INLINE_SPEC_LIMIT

if TYPE_CHECKING:
    from runplane.table.actions import ActionStore

TASK_PARTITION_PREFIX = "TASKS#"


def task_key(task_id: Any, *, field: str = "task_id") -> tuple[str, str, str, str]:
    """(project, domain, name, version) of a flyteidl2 TaskIdentifier, validated."""
    from runplane.flyte.identifiers import registry_key

    return registry_key(task_id, field=field, names=("name", "version"))


def task_partition_key(project: str, domain: str) -> str:
    return f"{TASK_PARTITION_PREFIX}{project}#{domain}"


@dataclass(kw_only=True)
class TaskRecord:
    project: str
    domain: str
    name: str
    version: str
    spec: bytes  # serialized flyteidl2.task.TaskSpec
    spec_uri: str = ""  # set instead of spec when the spec lives in the bucket
    spec_digest: str = ""
    short_name: str = ""
    environment_name: str = ""
    env_description: str = ""  # the environment's description, as Flyte's tasks table keeps it
    short_description: str = ""  # the spec's documentation.short_description
    created_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        if self.spec and not self.spec_digest:
            self.spec_digest = hashlib.sha256(self.spec).hexdigest()

    def to_item(self) -> dict[str, dict[str, Any]]:
        item: dict[str, dict[str, Any]] = {
            "pk": {"S": task_partition_key(self.project, self.domain)},
            "sk": {"S": f"{self.name}#{self.version}"},
            "project": {"S": self.project},
            "domain": {"S": self.domain},
            "name": {"S": self.name},
            "version": {"S": self.version},
            "spec_digest": {"S": self.spec_digest},
            "created_at": {"S": format_time(self.created_at)},
        }
        if self.spec:
            item["spec"] = {"B": self.spec}
        for name in ("spec_uri", "short_name", "environment_name", "env_description", "short_description"):
            if getattr(self, name):
                item[name] = {"S": getattr(self, name)}
        return item

    @classmethod
    def from_item(cls, item: dict[str, dict[str, Any]]) -> TaskRecord:
        get = _AttributeReader(item)
        return cls(
            project=get.string("project"),
            domain=get.string("domain"),
            name=get.string("name"),
            version=get.string("version"),
            spec=get.binary("spec"),
            spec_uri=get.string("spec_uri"),
            spec_digest=get.string("spec_digest"),
            short_name=get.string("short_name"),
            environment_name=get.string("environment_name"),
            env_description=get.string("env_description"),
            short_description=get.string("short_description"),
            created_at=parse_time(get.string("created_at")),
        )


@dataclass(frozen=True)
class DeployOutcome:
    created: bool
    record: TaskRecord


class TaskStore:
    """Tasks on the action store's table and bucket; every DynamoDB call goes through
    ``runplane.table.registry``."""

    def __init__(self, store: ActionStore) -> None:
        self._store = store
        self._items = RegistryItems(store)

    def deploy(self, record: TaskRecord) -> DeployOutcome:
        store = self._store
        stored = record
        if len(record.spec) > INLINE_SPEC_LIMIT:
            uri = store.offload(record.spec)
            stored = TaskRecord(**{**record.__dict__, "spec": b"", "spec_uri": uri})
        existing = self._items.insert(stored.to_item())
        if existing is not None:
            return DeployOutcome(created=False, record=self._resolve(TaskRecord.from_item(existing)))
        return DeployOutcome(created=True, record=record)

    def get(self, *, project: str, domain: str, name: str, version: str) -> TaskRecord | None:
        item = self._items.get({"pk": {"S": task_partition_key(project, domain)}, "sk": {"S": f"{name}#{version}"}})
        return self._resolve(TaskRecord.from_item(item)) if item is not None else None

    def list(self, *, project: str, domain: str, name: str | None = None) -> list[TaskRecord]:
        """A project's tasks (or one task's versions), specs not resolved."""
        prefix = f"{name}#" if name else ""
        return [TaskRecord.from_item(item) for item in self._items.query(task_partition_key(project, domain), prefix)]

    def _resolve(self, record: TaskRecord) -> TaskRecord:
        if record.spec_uri and not record.spec:
            return TaskRecord(**{**record.__dict__, "spec": self._store.read_offloaded(record.spec_uri)})
        return record
