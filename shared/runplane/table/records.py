"""The Action record and its DynamoDB item: one table, one partition per run.

Key design (docs/load-model.md):

- ``pk = <project>#<domain>#<run>``: a run's actions share a partition, so a run is read with one
  Query and its stream records stay in order on one shard.
- ``sk = A#<action name>``: an action; the root is ``A#a0``.
- ``sk = E#<action name>#<attempt>#<phase>#<version>``: one recorded ActionEvent (the per-attempt
  history), idempotent on that key; zero-padded so one action's events sort by attempt.
- Root items also carry ``run_index_pk``/``run_index_sk`` for the sparse ``RunsByCreatedAtV2``
  index (ListRuns, newest first). The index key is sharded so that one project can create runs
  faster than one partition's ~1,000 writes/s; readers merge the shards.
- A child also carries ``family_pk = <pk>#<parent name>`` for the sparse ``ChangesByFamily``
  index, sorted by ``updated_at`` (which every status write sets): a watch of a parent's
  children reads only what changed since its last read, never the whole run
  (``FAMILY_INDEX_PROJECTION``; docs/load-model.md, "Watches").
- A root that has ended also carries ``end_phase``, its phase, written with it: the index
  projects that instead of ``phase`` (``RUN_INDEX_PROJECTION``), so a run's entry is written
  when the run is created, starts and ends, not at every status change.

The serialized flyteidl2 messages (``ActionSpec``, ``RunSpec``) are stored as binary attributes,
deflated when that makes them smaller (``compress_spec``), unless they are large: then they live
in the data bucket and the item holds their URI (``runplane.table.actions`` offloads and resolves them).

Every write of an item, a status update included, is billed one write unit per started KB of the
whole item (and a refused conditional write per KB of the item it found), so items are kept
small: specs deflated, attributes at their usual value left out (``action_type`` TASK,
``cache_status`` 0, ``origin`` create_run; a task's project, domain, function and short names
when they are its action's and its own name: ``_usual_strings``), the inputs' URI relative to
the run's directory when it is under it (``inputs_rel``), the request digest as its 32 bytes.
``from_item`` restores every one of them exactly, and reads items written either way.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

from runplane.flyte import phases
from runplane.flyte.identifiers import ROOT_ACTION_NAME, ActionKey

KEY_SEPARATOR = "#"
ACTION_SORT_PREFIX = "A#"
EVENT_SORT_PREFIX = "E#"
RUN_INDEX_NAME = "RunsByCreatedAtV2"
# The run index of earlier versions (it projected every listed attribute, ``phase`` included, so
# every status change of a root rewrote its entry). Only a stack moving onto RunsByCreatedAtV2
# still has it, and reads it until the new index has filled (docs/deploy.md, "Upgrading").
PREVIOUS_RUN_INDEX_NAME = "RunsByCreatedAt"

# An item as read back, in the low-level client's attribute-value form (``{"S": text}``,
# ``{"N": digits}``, ``{"B": ...}``): from a boto3 response (``B`` as bytes, boto3's typed dicts) or a
# Lambda stream image (``B`` as base64 text).
StoredItem = Mapping[str, Mapping[str, Any]]

# flyteidl2.workflow.ActionType numbers (not imported here: records stay free of protobuf).
ACTION_TYPE_TASK = 1
ACTION_TYPE_TRACE = 2
ACTION_TYPE_CONDITION = 3

ORIGIN_CREATE_RUN = "create_run"
ORIGIN_ENQUEUED = "enqueue"
ORIGIN_RECORDED = "record"  # RecordAction: the action already runs in the cluster

# The sparse index of a parent's children by their last change: ``family_pk`` (written once, when
# the child is created) and ``updated_at`` (every status write sets it). Each status write moves
# the child's entry (a delete and a put of the projected attributes, a few hundred bytes: 2 write
# units), so a poll of a family is one Query of what changed since the last, whatever the run's
# size.
FAMILY_INDEX_NAME = "ChangesByFamily"
FAMILY_KEY = "family_pk"
# A root's phase once it has ended, beside ``phase`` (``ActionStore`` writes both in one update):
# what the run index projects instead of ``phase``.
END_PHASE = "end_phase"

# 16 shards x ~1,000 writes/s per index partition leaves headroom over 10,000 runs/s per project.
RUN_INDEX_SHARDS = 16
# What the run index projects: what a run listing shows that never changes after the run is
# created, and the run's state once it has ended (``end_phase``, the times, attempts, cache
# status); never the specs. DynamoDB writes an index entry (one unit per KB of the projected
# attributes) each time a write changes one of these, so ``phase``, ``updated_at`` and
# ``version``, which change at every status update, stay out: a run's entry is written when it is
# created, when it starts and when it ends (and on a retry). ListRuns reads the state of a run
# that has not ended from its item (``functions/read_runs/run_listing.py``). template.yaml lists
# the same names (checked by a test).
RUN_INDEX_PROJECTION = (
    "project", "domain", "run_name", "name", "action_type", "run_source", "attempts", "cache_status",
    "task_project", "task_domain", "task_name", "task_version", "task_type", "task_short_name", "function_name",
    "environment_name", "trigger_name", "trigger_task_name", "trigger_revision",
    "created_at", "start_time", "ended_at", "end_phase",
)  # fmt: skip
# What a watch of a parent's children (WatchForUpdates, StateService/Watch) reads of each action:
# enough for ``ActionRecord.from_item`` and an ActionUpdate (phase, error, output location), never
# the specs.
ACTION_STATE_ATTRIBUTES = (
    "project", "domain", "run_name", "name", "parent", "phase", "action_type", "attempts", "created_at",
    "error_kind", "error_code", "error_message", "run_output_base", "output_uri", "version", "signal_value",
)  # fmt: skip
# What the family index projects beside its keys: what an ActionUpdate needs. template.yaml lists
# the same names (checked by a test).
FAMILY_INDEX_PROJECTION = ACTION_STATE_ATTRIBUTES
# What ListActions reads of each action (and ListRuns of a run that has not ended): what a listing
# shows and filters on, and the action's place in its run (parent, group); never the specs, which
# would make a page of a large run read megabytes.
ACTION_LISTING_ATTRIBUTES = (
    "project", "domain", "run_name", "name", "phase", "action_type", "run_source", "origin", "attempts",
    "cache_status", "task_project", "task_domain", "task_name", "task_version", "task_type",
    "task_short_name", "function_name", "environment_name", "error_kind", "error_message", "abort_reason",
    "trigger_name", "trigger_task_name", "trigger_revision",
    "abort_requested_at", "created_at", "start_time", "updated_at", "ended_at", "version", "parent", "group",
)  # fmt: skip


# Specs are stored deflated when that makes them smaller, marked by a leading 0x07. A serialized
# protobuf message never starts with 0x00-0x07 (field number 0 does not exist), so a spec stored
# raw, by an earlier version too, reads back unchanged; other bytes that start with 0x07 or 0x06
# are stored escaped behind 0x06, so every value round-trips.
_DEFLATED = b"\x07"
_ESCAPED = b"\x06"
_DEFLATE_LEVEL = 6  # zlib's default: most of level 9's gain on small messages, at a third of the time
_RAW_DEFLATE = -15  # no zlib header or checksum: six bytes fewer per item


def compress_spec(data: bytes) -> bytes:
    """A serialized spec as stored: deflated if that saves bytes (``decompress_spec`` undoes it)."""
    compressor = zlib.compressobj(_DEFLATE_LEVEL, zlib.DEFLATED, _RAW_DEFLATE)
    deflated = _DEFLATED + compressor.compress(data) + compressor.flush()
    if len(deflated) < len(data):
        return deflated
    return _ESCAPED + data if data[:1] in (_DEFLATED, _ESCAPED) else data


def decompress_spec(stored: bytes) -> bytes:
    if stored[:1] == _DEFLATED:
        return zlib.decompress(stored[1:], _RAW_DEFLATE)
    return stored[1:] if stored[:1] == _ESCAPED else stored


def utcnow() -> datetime:
    return datetime.now(UTC)


_TIME_LENGTH = len("2026-01-01T00:00:00.000000Z")


def format_time(value: datetime) -> str:
    """Fixed-width UTC ISO-8601 with microseconds, so string order is time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    """The inverse of ``format_time`` (``fromisoformat``: a tenth of ``strptime``'s cost, and every
    item read parses several times)."""
    if len(value) != _TIME_LENGTH or value[-1] != "Z":
        raise ValueError(f"not a time written by format_time: {value!r}")
    return datetime.fromisoformat(value)


def run_partition_key(project: str, domain: str, run: str) -> str:
    return KEY_SEPARATOR.join((project, domain, run))


def action_sort_key(name: str) -> str:
    return ACTION_SORT_PREFIX + name


def family_key(key: ActionKey, parent: str) -> str:
    """The family index's partition of ``parent``'s children (``key``: any action of the run)."""
    return KEY_SEPARATOR.join((run_partition_key(key.project, key.domain, key.run), parent))


def item_key(key: ActionKey) -> dict[str, dict[str, str]]:
    return {"pk": {"S": run_partition_key(key.project, key.domain, key.run)}, "sk": {"S": action_sort_key(key.name)}}


def event_sort_key(name: str, *, attempt: int, phase: int, version: int) -> str:
    return f"{EVENT_SORT_PREFIX}{name}#{attempt:06d}#{phase:02d}#{version:010d}"


def run_index_shard(run: str) -> int:
    return zlib.crc32(run.encode()) % RUN_INDEX_SHARDS


def returned_item(reply: Mapping[str, object]) -> StoredItem | None:
    """The item a failed condition returned (``ReturnValuesOnConditionCheckFailure="ALL_OLD"``),
    from an error response or a transaction's cancellation reason; ``None`` when there was none.
    botocore's stubs lack the error response's ``Item`` and give a cancellation reason's item a
    key/value shape it does not have, hence the cast."""
    return cast("StoredItem | None", reply.get("Item"))


@dataclass(kw_only=True)
class ActionRecord:
    """One action as stored. A run is the record whose name is ``a0`` and that has no parent."""

    key: ActionKey
    parent: str | None = None
    phase: int = phases.QUEUED
    action_type: int = ACTION_TYPE_TASK
    run_source: str = ""  # the RunSource enum *name*, as Flyte stores it; roots only
    origin: str = ORIGIN_CREATE_RUN  # who created it; only recorded actions already have a TaskAction
    group: str = ""
    attempts: int = 1
    cache_status: int = 0
    task_project: str = ""
    task_domain: str = ""
    task_name: str = ""
    task_version: str = ""
    task_type: str = ""
    task_short_name: str = ""
    function_name: str = ""
    environment_name: str = ""
    action_spec: bytes = b""  # serialized flyteidl2.workflow.ActionSpec
    run_spec: bytes = b""  # serialized flyteidl2.task.RunSpec; roots only
    action_spec_uri: str = ""  # set instead of action_spec when the spec lives in the bucket
    run_spec_uri: str = ""
    inputs_uri: str = ""  # the inputs.pb file; the spec's input_uri is its directory
    request_digest: str = ""  # sha256 of the CreateRun request that made the run; roots only
    error_kind: str = ""  # the ErrorInfo.Kind name: KIND_USER, KIND_SYSTEM
    error_code: str = ""  # the executor's errorState.code, e.g. MaxRetriesExceeded
    error_message: str = ""
    # Where the data plane writes this action's outputs (``<base>/<shard>/.../<action>/<attempt>``);
    # kept on the item so watches compute output URIs without reading the spec.
    run_output_base: str = ""
    output_uri: str = ""  # traces only: the trace's own outputs, reported by the SDK
    # Conditions only: the serialized core.Literal SignalEvent wrote (runplane.table.signals); the
    # watch hands it to the waiting SDK inline (ActionUpdate.value), as Flyte does.
    signal_value: bytes = b""
    trigger_name: str = ""  # runs a schedule started
    trigger_task_name: str = ""
    trigger_revision: int = 0
    abort_reason: str = ""
    abort_error: str = ""  # an abort reconcile could not carry out
    abort_requested_at: datetime | None = None  # set until reconcile has deleted the TaskAction
    created_at: datetime = field(default_factory=utcnow)
    start_time: datetime | None = None  # reported by the data plane; the start only moves earlier
    updated_at: datetime | None = None
    ended_at: datetime | None = None  # written once: the first end wins
    version: int = 1  # bumped on every write

    @property
    def is_root(self) -> bool:
        return self.parent is None and self.key.name == ROOT_ACTION_NAME

    @property
    def started_at(self) -> datetime:
        return min(self.created_at, self.start_time) if self.start_time else self.created_at

    @property
    def duration_ms(self) -> int | None:
        """Derived, never stored: an end is never before the start."""
        if self.ended_at is None:
            return None
        return max(0, int((self.ended_at - self.started_at).total_seconds() * 1000))

    @property
    def needs_taskaction(self) -> bool:
        """Whether reconcile must create this action's TaskAction (traces never have one, and
        recorded actions were created in the cluster by Flyte itself)."""
        return self.action_type in (ACTION_TYPE_TASK, ACTION_TYPE_CONDITION) and self.origin != ORIGIN_RECORDED

    def with_changes(self, **changes: Any) -> ActionRecord:
        return replace(self, **changes)

    # --- DynamoDB mapping -------------------------------------------------------------------

    def to_item(self) -> dict[str, dict[str, Any]]:
        key = self.key
        item: dict[str, dict[str, Any]] = {
            **item_key(key),
            "project": {"S": key.project},
            "domain": {"S": key.domain},
            "run_name": {"S": key.run},
            "name": {"S": key.name},
            "phase": {"N": str(self.phase)},
            "attempts": {"N": str(self.attempts)},
            "created_at": {"S": format_time(self.created_at)},
            "updated_at": {"S": format_time(self.updated_at or self.created_at)},
            "version": {"N": str(self.version)},
        }
        # Attributes at their usual value are left out (``from_item`` restores them): every write
        # of the item is billed per KB of all of it (see the module docstring).
        if self.action_type != ACTION_TYPE_TASK:
            item["action_type"] = {"N": str(self.action_type)}
        if self.cache_status:
            item["cache_status"] = {"N": str(self.cache_status)}
        for name in _OPTIONAL_STRINGS:
            value = getattr(self, name)
            if value and not (name == "origin" and value == ORIGIN_CREATE_RUN):
                item[name] = {"S": value}
        for name, usual in _usual_strings(key, self.task_name).items():
            value = getattr(self, name)
            if value != usual:  # "" too, when the usual value is not
                item[name] = {"S": value}
        base, inputs = self.run_output_base, self.inputs_uri
        if base and inputs.startswith(base) and len(inputs) > len(base):
            item["inputs_rel"] = {"S": inputs[len(base) :]}  # its run's directory is already on the item
        elif inputs:
            item["inputs_uri"] = {"S": inputs}
        if self.request_digest:
            item["request_digest"] = {"B": bytes.fromhex(self.request_digest)}
        for name in _OPTIONAL_BINARIES:
            value = getattr(self, name)
            if value:
                item[name] = {"B": compress_spec(value)}
        for name in _OPTIONAL_TIMES:
            value = getattr(self, name)
            if value is not None:
                item[name] = {"S": format_time(value)}
        if self.signal_value:
            item["signal_value"] = {"B": self.signal_value}  # raw, as record_signal writes it
        if self.trigger_revision:
            item["trigger_revision"] = {"N": str(self.trigger_revision)}
        if self.parent is not None:
            item[FAMILY_KEY] = {"S": family_key(key, self.parent)}
        if self.is_root:
            shard = run_index_shard(key.run)
            item["run_index_pk"] = {"S": KEY_SEPARATOR.join((key.project, key.domain, f"{shard:02d}"))}
            item["run_index_sk"] = {"S": f"{format_time(self.created_at)}{KEY_SEPARATOR}{key.run}"}
            if phases.is_terminal(self.phase):
                item[END_PHASE] = {"N": str(self.phase)}
        return item

    @classmethod
    def from_item(cls, item: StoredItem) -> ActionRecord:
        """Read a stored item, from a boto3 response (``B`` as bytes) or a Lambda stream event
        (``B`` as base64 text)."""
        get = _AttributeReader(item)
        key = ActionKey(
            project=get.string("project"),
            domain=get.string("domain"),
            run=get.string("run_name"),
            name=get.string("name"),
        )
        relative_inputs = get.string("inputs_rel")
        optional: dict[str, Any] = {  # the optional attributes, by name
            **{name: get.time(name) for name in _OPTIONAL_TIMES},
            **{name: get.string(name) for name in _OPTIONAL_STRINGS if name != "parent"},
            **{
                name: get.string(name) if name in item else usual
                for name, usual in _usual_strings(key, get.string("task_name")).items()
            },
            **{name: decompress_spec(get.binary(name)) for name in _OPTIONAL_BINARIES},
            "origin": get.string("origin") or ORIGIN_CREATE_RUN,
            "request_digest": get.digest("request_digest"),
            "inputs_uri": get.string("run_output_base") + relative_inputs
            if relative_inputs
            else get.string("inputs_uri"),
        }
        return cls(
            key=key,
            parent=get.string("parent") or None,
            # A run-index entry has no ``phase``: an ended run's entry has its ``end_phase``.
            phase=get.number("phase") if "phase" in item else get.number(END_PHASE),
            action_type=get.number("action_type", default=ACTION_TYPE_TASK),
            attempts=get.number("attempts"),
            cache_status=get.number("cache_status"),
            created_at=parse_time(get.string("created_at")),
            updated_at=parse_time(get.string("updated_at")) if "updated_at" in item else None,
            version=get.number("version", default=1),
            trigger_revision=get.number("trigger_revision"),
            signal_value=get.binary("signal_value"),
            **optional,
        )


_OPTIONAL_STRINGS = (
    "parent",
    "run_source",
    "origin",
    "group",
    "task_name",
    "task_version",
    "task_type",
    "environment_name",
    "error_kind",
    "error_code",
    "error_message",
    "run_output_base",
    "output_uri",
    "trigger_name",
    "trigger_task_name",
    "abort_reason",
    "abort_error",
    "action_spec_uri",
    "run_spec_uri",
)
_OPTIONAL_BINARIES = ("action_spec", "run_spec")


def _usual_strings(key: ActionKey, task_name: str) -> dict[str, str]:
    """What these attributes almost always are, so an item leaves them out unless they differ:
    a task's own project and domain are its action's, and its function and short names are its
    name (every action CreateRun, Enqueue and RecordAction write)."""
    return {
        "task_project": key.project if task_name else "",
        "task_domain": key.domain if task_name else "",
        "function_name": task_name,
        "task_short_name": task_name,
    }


_OPTIONAL_TIMES = ("start_time", "ended_at", "abort_requested_at")


@dataclass(kw_only=True)
class EventRecord:
    """One ActionEvent reported for an attempt, stored as Flyte stores it (serialized)."""

    key: ActionKey
    attempt: int
    phase: int
    version: int
    info: bytes  # serialized flyteidl2.workflow.ActionEvent
    error_kind: str = ""
    created_at: datetime = field(default_factory=utcnow)

    def to_item(self) -> dict[str, dict[str, Any]]:
        key = self.key
        item: dict[str, dict[str, Any]] = {
            "pk": {"S": run_partition_key(key.project, key.domain, key.run)},
            "sk": {"S": event_sort_key(key.name, attempt=self.attempt, phase=self.phase, version=self.version)},
            "name": {"S": key.name},
            "attempt": {"N": str(self.attempt)},
            "phase": {"N": str(self.phase)},
            "event_version": {"N": str(self.version)},
            "info": {"B": self.info},
            "created_at": {"S": format_time(self.created_at)},
        }
        if self.error_kind:
            item["error_kind"] = {"S": self.error_kind}
        return item

    @classmethod
    def from_item(cls, item: StoredItem) -> EventRecord:
        get = _AttributeReader(item)
        project, domain, run = get.string("pk").split(KEY_SEPARATOR)
        return cls(
            key=ActionKey(project=project, domain=domain, run=run, name=get.string("name")),
            attempt=get.number("attempt"),
            phase=get.number("phase"),
            version=get.number("event_version"),
            info=get.binary("info"),
            error_kind=get.string("error_kind"),
            created_at=parse_time(get.string("created_at")),
        )


class _AttributeReader:
    def __init__(self, item: StoredItem) -> None:
        self._item = item

    def string(self, name: str) -> str:
        value = self._item.get(name)
        return value["S"] if value and "S" in value else ""

    def digest(self, name: str) -> str:
        """A digest as hex: stored as its bytes (``B``), or as hex text by earlier versions."""
        value = self._item.get(name)
        if value and "S" in value:
            return str(value["S"])
        return self.binary(name).hex()

    def number(self, name: str, default: int = 0) -> int:
        value = self._item.get(name)
        return int(value["N"]) if value and "N" in value else default

    def time(self, name: str) -> datetime | None:
        value = self.string(name)
        return parse_time(value) if value else None

    def binary(self, name: str) -> bytes:
        value = self._item.get(name)
        if not value or "B" not in value:
            return b""
        raw = value["B"]
        return base64.b64decode(raw) if isinstance(raw, str) else bytes(raw)
