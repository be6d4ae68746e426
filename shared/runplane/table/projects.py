"""Projects: the items behind Flyte's ProjectService, and whether a project exists (CreateRun asks).

Items: ``pk = PROJECTS``, ``sk = P#<id>``, every project in one partition: projects are few and
rarely written, and a listing is one Query. Attributes: ``id``, ``name``, ``description``,
``labels`` (a serialized ``flyteidl2.task.Labels``), ``state`` (the ``ProjectState`` number),
``created_at``, ``updated_at``. Domains are not stored: every project has the configured domains,
which Flyte injects into every project too.

Seed projects (Flyte's ``seedProjects``, ``flytesnacks`` by default) exist from the start, as
Flyte creates them when it starts: the first read that misses one writes it (an insert that never
overwrites), and from then on it is a project like any other.

Every DynamoDB call goes through the registry's data-access module (``runplane.table.registry``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runplane.table.records import _AttributeReader, format_time, parse_time, utcnow
from runplane.table.registry import RegistryItems

if TYPE_CHECKING:
    from runplane.table.actions import ActionStore

PROJECT_PARTITION = "PROJECTS"
PROJECT_SORT_PREFIX = "P#"
# flyteidl2.project.ProjectState numbers (records stay free of protobuf): a project Flyte lists
# by default is anything but archived.
STATE_ACTIVE = 0
STATE_ARCHIVED = 1


@dataclass(kw_only=True)
class ProjectRecord:
    id: str
    name: str = ""
    description: str = ""
    labels: bytes = b""  # serialized flyteidl2.task.Labels; empty: none
    state: int = STATE_ACTIVE
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def key(self) -> dict[str, dict[str, str]]:
        return project_key(self.id)

    def to_item(self) -> dict[str, dict[str, Any]]:
        item: dict[str, dict[str, Any]] = {
            **self.key(),
            "id": {"S": self.id},
            "name": {"S": self.name},
            "description": {"S": self.description},
            "state": {"N": str(self.state)},
            "created_at": {"S": format_time(self.created_at)},
            "updated_at": {"S": format_time(self.updated_at)},
        }
        if self.labels:
            item["labels"] = {"B": self.labels}
        return item

    @classmethod
    def from_item(cls, item: dict[str, dict[str, Any]]) -> ProjectRecord:
        get = _AttributeReader(item)
        return cls(
            id=get.string("id"),
            name=get.string("name"),
            description=get.string("description"),
            labels=get.binary("labels"),
            state=get.number("state"),
            created_at=parse_time(get.string("created_at")),
            updated_at=parse_time(get.string("updated_at")),
        )


def project_key(project_id: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": PROJECT_PARTITION}, "sk": {"S": PROJECT_SORT_PREFIX + project_id}}


class ProjectStore:
    """Project items on the action store's table; ``seeds`` name the projects that always exist."""

    def __init__(self, store: ActionStore, *, seeds: Sequence[str] = ()) -> None:
        self._items = RegistryItems(store)
        self._seeds = tuple(seeds)
        self._known: set[str] = set()  # projects seen to exist: they always will (see ``exists``)

    def create(self, record: ProjectRecord) -> bool:
        """Insert a new project; False when one of that id exists (nothing is written)."""
        if record.id in self._seeds:
            self._seed(record.id)
        return self._items.insert(record.to_item()) is None

    def get(self, project_id: str) -> ProjectRecord | None:
        item = self._items.get(project_key(project_id))
        if item is not None:
            return ProjectRecord.from_item(item)
        return self._seed(project_id) if project_id in self._seeds else None

    def exists(self, project_id: str) -> bool:
        """Whether the project exists. A project is never deleted (archived ones still exist, as
        in Flyte), so a seed, or one found once, is known for the life of this store without a
        read: CreateRun checks its project without a GetItem on every call. A project not found
        is looked up again next time (it may be created meanwhile)."""
        if project_id in self._seeds or project_id in self._known:
            return True
        if self.get(project_id) is None:
            return False
        self._known.add(project_id)
        return True

    def update(self, record: ProjectRecord) -> bool:
        """Replace what a project says about itself (name, description, labels, state), as Flyte's
        UPDATE does; its id and creation time stay. False when there is no such project."""
        if record.id in self._seeds:
            self._seed(record.id)
        values: dict[str, Any] = {
            "name": {"S": record.name},
            "description": {"S": record.description},
            "state": {"N": str(record.state)},
            "updated_at": {"S": format_time(utcnow())},
        }
        if record.labels:
            values["labels"] = {"B": record.labels}
        return self._items.update_existing(
            project_key(record.id), set_values=values, remove=() if record.labels else ("labels",)
        )

    def list(self) -> list[ProjectRecord]:
        """Every project, seeds included (a seed never read before is written now)."""
        records = [ProjectRecord.from_item(item) for item in self._items.query(PROJECT_PARTITION, PROJECT_SORT_PREFIX)]
        known = {record.id for record in records}
        return records + [self._seed(seed) for seed in self._seeds if seed not in known]

    def _seed(self, project_id: str) -> ProjectRecord:
        """The seed project's item, written now if it is missing (Flyte: created at start-up)."""
        record = ProjectRecord(id=project_id, name=project_id)
        stored = self._items.insert(record.to_item())
        return record if stored is None else ProjectRecord.from_item(stored)
