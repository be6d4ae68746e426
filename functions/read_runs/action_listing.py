"""ListActions: the columns of a run's actions as Flyte's ``ActionColumnsSet`` names them, and
Flyte's orders (docs/flyte-compat.md#list-actions).

A run's actions are one partition, read with one Query (``list_action_listings``: no specs);
``runplane.connect.listing`` applies the request's filters, sort and page token to them. Every field of
Flyte's allowlist can be filtered and sorted on, with Flyte's functions; ``trigger_type`` is
allowlisted by Flyte but is no column (docs/flyte-compat.md#q3-trigger-type-filter) and is refused,
naming it. Columns Flyte keeps NULL when unset (the task and trigger columns, ``ended_at``,
``duration_ms``, ``created_by_subject``, which is never captured here) are missing values: no
filter matches them.
"""

from __future__ import annotations

from typing import Any

from flyteidl2.common.phase_pb2 import ActionPhase
from flyteidl2.workflow import run_definition_pb2 as wf

from runplane.connect.errors import invalid_argument
from runplane.connect.listing import Column, Kind, ListSchema, SortKey
from runplane.table.records import ActionRecord


def _enum_number(enum: Any, *, prefix: str, field: str) -> Any:
    """Reads an enum filter value: its number (what Flyte's integer column takes), or its name
    with or without the prefix."""

    def read(value: str) -> int:
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        for candidate in (text.upper(), prefix + text.upper()):
            if candidate in enum.DESCRIPTOR.values_by_name:
                return int(enum.Value(candidate))
        raise invalid_argument(f"request.filters: {value!r} is not a valid {field}")

    return read


def _run_source(value: str) -> str:
    """``run_source`` holds the RunSource name (Flyte stores ``source.String()``); a number or a
    short name reads as that name, and any other text is compared as it is, as Postgres would."""
    text = value.strip()
    if text.isdigit() and int(text) in wf.RunSource.values():
        return str(wf.RunSource.Name(int(text)))
    for candidate in (text.upper(), "RUN_SOURCE_" + text.upper()):
        if candidate in wf.RunSource.DESCRIPTOR.values_by_name:
            return candidate
    return value


def _text(name: str) -> Column[ActionRecord]:
    return Column(kind=Kind.TEXT, value=lambda record: getattr(record, name) or None)


ACTIONS: ListSchema[ActionRecord] = ListSchema(
    what="actions",
    columns={
        "project": Column(kind=Kind.TEXT, value=lambda r: r.key.project),
        "domain": Column(kind=Kind.TEXT, value=lambda r: r.key.domain),
        "run_name": Column(kind=Kind.TEXT, value=lambda r: r.key.run),
        "phase": Column(
            kind=Kind.INTEGER,
            value=lambda r: r.phase,
            parse=_enum_number(ActionPhase, prefix="ACTION_PHASE_", field="phase"),
        ),
        "action_type": Column(
            kind=Kind.INTEGER,
            value=lambda r: r.action_type,
            parse=_enum_number(wf.ActionType, prefix="ACTION_TYPE_", field="action_type"),
        ),
        "run_source": Column(kind=Kind.TEXT, value=lambda r: r.run_source, parse=_run_source),
        "created_by_subject": Column(kind=Kind.TEXT, value=lambda r: None),  # identities are not captured
        "trigger_task_name": _text("trigger_task_name"),
        "trigger_name": _text("trigger_name"),
        "trigger_revision": Column(kind=Kind.INTEGER, value=lambda r: r.trigger_revision or None),
        "trigger_type": Column(kind=Kind.TEXT, value=lambda r: None),
        "task_project": _text("task_project"),
        "task_domain": _text("task_domain"),
        "task_name": _text("task_name"),
        "task_version": _text("task_version"),
        "function_name": Column(kind=Kind.TEXT, value=lambda r: r.function_name),
        "created_at": Column(kind=Kind.TIME, value=lambda r: r.created_at),
        "updated_at": Column(kind=Kind.TIME, value=lambda r: r.updated_at or r.created_at),
        "ended_at": Column(kind=Kind.TIME, value=lambda r: r.ended_at),
        "duration_ms": Column(kind=Kind.INTEGER, value=lambda r: r.duration_ms),
        # remote.Condition.listall(run_name, action_name): a parent's conditions
        "parent_name": Column(kind=Kind.TEXT, value=lambda r: r.parent or None),
    },
    hidden={"name": Column(kind=Kind.TEXT, value=lambda r: r.key.name)},
    # Flyte: "non-terminal runs at the top, then by most recent start time".
    default_order=(
        SortKey("phase", ascending=True),
        SortKey("created_at", ascending=False),
        SortKey("run_name", ascending=False),
        SortKey("name", ascending=False),
    ),
    tiebreakers=(SortKey("run_name", ascending=True), SortKey("name", ascending=True)),
    refused={"trigger_type": "no action stores it (Flyte's filter on it fails in SQL: docs/flyte-compat.md#q3)"},
)
