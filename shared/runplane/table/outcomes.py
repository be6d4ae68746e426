"""What the actions' store answers: outcomes, not exceptions, for every refusal a caller decides on.

A failed condition of a conditional write is an answer (the child existed, the parent had ended,
the guard refused the update), so the store returns these and the services above decide what
each means on the wire. Only a record too large for an item is an exception: it is the caller's
bug, never a race.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from runplane.table.records import ActionRecord, StoredItem

# DynamoDB rejects items over 400 KB; stay clear of it so a record near the limit fails with a
# clear message instead of a ValidationException from the service.
MAX_ITEM_BYTES = 390 * 1024


class RecordTooLarge(ValueError):
    """The record would exceed DynamoDB's item size limit."""


@dataclass(frozen=True)
class CreateOutcome:
    created: bool
    record: ActionRecord  # the stored record: the new one, or the one that already existed


class ChildRefusal(StrEnum):
    PARENT_MISSING = "parent_missing"
    PARENT_ENDED = "parent_ended"


@dataclass(frozen=True)
class ChildOutcome:
    created: bool
    record: ActionRecord | None = None  # the new child, or the one that already existed
    refusal: ChildRefusal | None = None
    parent_phase: int | None = None


@dataclass(frozen=True)
class StatusUpdate:
    phase: int
    attempts: int | None = None  # None keeps the stored attempt (docs/flyte-compat.md#q8-promotion-attempts)
    cache_status: int | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None  # only used when the phase is terminal
    # The action's error, as the data plane reports it for a failed attempt (kind is the
    # ErrorInfo.Kind name); written only when a message is given.
    error_kind: str = ""
    error_code: str = ""
    error_message: str = ""


@dataclass(frozen=True)
class UpdateOutcome:
    applied: bool
    # The stored phase after the call: the update's if applied, the one found otherwise (None: no
    # such action). An applied update returns nothing else (no ReturnValues: the item is not
    # sent back and parsed on every status write); a refused one returns the item it found.
    phase: int | None
    found: ActionRecord | None = None

    @property
    def missing(self) -> bool:
        return self.phase is None


class ActionNode(NamedTuple):
    """An action's place in its run's tree, and its phase (``ActionStore.list_action_tree``)."""

    name: str
    parent: str | None
    phase: int


class ActionState(NamedTuple):
    """What reconcile decides a stream record on (``ActionStore.get_action_states``): the action's
    current phase, and the abort request it has not carried out yet."""

    phase: int
    abort_requested_at: datetime | None


# What get_action_states reads of an item: its key (to match the answer to the request), the
# phase and a pending abort. moto, the local stand-in, serialises an answer attribute by attribute,
# so four attributes instead of an item's twenty are a quarter of its time.
ACTION_STATE_PROJECTION = "pk, sk, phase, abort_requested_at"


def item_size(item: StoredItem) -> int:
    """DynamoDB's item size: attribute names plus values (numbers counted generously)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        ((kind, raw),) = value.items()
        if kind == "S":
            size += len(raw.encode())
        elif kind == "B":
            size += len(raw)
        elif kind == "N":
            size += len(raw) // 2 + 2
        else:
            size += 1
    return size


def write_units(item: StoredItem) -> int:
    """Write request units of one standard write of the item (1 per started KB)."""
    return max(1, -(-item_size(item) // 1024))
