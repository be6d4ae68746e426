"""A run's actions as WatchActions shows them (pure logic, Flyte's runStateManager): each action
with the phase counts of *all* its descendants, and whether it is visible under the filter (it
matches, or one of its descendants does)."""

from __future__ import annotations

from collections import Counter, defaultdict

from flyteidl2.common import list_pb2
from flyteidl2.workflow import run_definition_pb2 as wf

from runplane.connect.errors import invalid_argument
from runplane.connect.transformers import action_message
from runplane.table.records import ActionRecord

Function = list_pb2.Filter.Function


class ActionFilter:
    """PHASE with VALUE_IN (phase numbers) and NAME with CONTAINS_CASE_INSENSITIVE, as Flyte."""

    def __init__(self, filters: list[list_pb2.Filter]) -> None:
        self._phases: set[int] | None = None
        self._names: list[str] = []
        for item in filters:
            field = item.field.upper()
            if field == "PHASE" and item.function == Function.VALUE_IN:
                try:
                    self._phases = {int(value) for value in item.values}
                except ValueError:
                    raise invalid_argument("filter: PHASE values must be phase numbers") from None
            elif field == "NAME" and item.function == Function.CONTAINS_CASE_INSENSITIVE:
                self._names.extend(value.lower() for value in item.values)
            else:
                raise invalid_argument(
                    f"filter: {item.field!r} with {Function.Name(item.function)} is not supported "
                    "(PHASE with VALUE_IN, NAME with CONTAINS_CASE_INSENSITIVE)"
                )

    def matches(self, record: ActionRecord) -> bool:
        if self._phases is not None and record.phase not in self._phases:
            return False
        short_name = (record.function_name.rsplit(".", 1)[-1] or record.key.name).lower()
        return all(name in short_name for name in self._names)


def enriched_actions(records: list[ActionRecord], action_filter: ActionFilter) -> dict[str, wf.EnrichedAction]:
    """Every action of a run, enriched, by name; parents before children (creation order)."""
    by_name = {r.key.name: r for r in records}
    children: dict[str, list[str]] = defaultdict(list)
    for record in records:
        if record.parent in by_name:
            children[record.parent].append(record.key.name)

    counts: dict[str, Counter] = {}
    visible: dict[str, bool] = {}

    def walk(name: str) -> None:  # post-order, iterative: runs can be deep
        stack = [(name, False)]
        while stack:
            current, done = stack.pop()
            if not done:
                stack.append((current, True))
                stack.extend((child, False) for child in children[current])
                continue
            total: Counter = Counter()
            any_visible = action_filter.matches(by_name[current])
            for child in children[current]:
                total[by_name[child].phase] += 1
                total.update(counts[child])
                any_visible = any_visible or visible[child]
            counts[current], visible[current] = total, any_visible

    for record in records:
        if record.parent not in by_name:
            walk(record.key.name)
    ordered = sorted(records, key=lambda r: (r.created_at, r.key.name))
    return {
        r.key.name: wf.EnrichedAction(
            action=action_message(r),
            meets_filter=visible.get(r.key.name, False),
            children_phase_counts=dict(counts.get(r.key.name, {})),
        )
        for r in ordered
    }
