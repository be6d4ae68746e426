"""EventBridge Scheduler's clock, locally: fires the due ticks of the schedules in moto.

moto stores schedules but never fires them. This loop reads the enabled schedules of the group,
computes their ticks (cron with croniter, in the schedule's time zone; rate from its start), and
invokes the target (create_run's handler) with the schedule's input, ``<aws.scheduler.scheduled-
time>`` replaced by the tick, as Scheduler does. A schedule's first sighting is its baseline: no
tick fires for times before the schedule was seen (Flyte does not fire immediately on deploy).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from functions.task_registry.schedules import standard_cron
from functions.task_registry.triggers import SCHEDULED_TIME
from local_stack.lambda_runtime import LambdaContext

logger = logging.getLogger(__name__)

MAX_TICKS_PER_PASS = 100  # a stack that slept for days catches up at most this much per schedule


def ticks(
    expression: str, timezone: str, *, after: datetime, until: datetime, start: datetime | None = None
) -> list[datetime]:
    """The schedule's ticks in (after, until], in UTC."""
    if expression.startswith("rate("):
        value, unit = expression[len("rate(") : -1].split()
        step = timedelta(**{unit.rstrip("s") + "s": int(value)})
        origin = start or after
        first = origin + step * max(0, int((after - origin) / step) + 1) if after >= origin else origin
        result, moment = [], first
        while moment <= until and len(result) < MAX_TICKS_PER_PASS:
            result.append(moment.astimezone(UTC))
            moment += step
        return result
    from croniter import croniter

    zone = ZoneInfo(timezone or "UTC")
    iterator = croniter(standard_cron(expression), after.astimezone(zone))
    result = []
    while len(result) < MAX_TICKS_PER_PASS:
        moment = iterator.get_next(datetime)
        if moment > until:
            break
        result.append(moment.astimezone(UTC))
    return result


class LocalScheduler:
    def __init__(
        self,
        *,
        client: Any,
        group: str,
        target: Callable[[dict, Any], Any],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._group = group
        self._target = target
        self._clock = clock
        self._seen: dict[str, datetime] = {}  # schedule -> the last time its ticks were fired up to
        self.fired: list[tuple[str, datetime]] = []

    def fire_due(self, now: datetime | None = None) -> int:
        now = now or self._clock()
        fired = 0
        for summary in self._client.list_schedules(GroupName=self._group).get("Schedules", []):
            name = summary["Name"]
            if summary.get("State") != "ENABLED":
                self._seen.pop(name, None)  # re-enabling does not back-fill the pause, as in Flyte
                continue
            since = self._seen.setdefault(name, now)
            schedule = self._client.get_schedule(Name=name, GroupName=self._group)
            for tick in ticks(
                schedule["ScheduleExpression"],
                schedule.get("ScheduleExpressionTimezone", "UTC"),
                after=since,
                until=now,
                start=schedule.get("StartDate"),
            ):
                event = json.loads(
                    schedule["Target"]["Input"].replace(SCHEDULED_TIME, tick.strftime("%Y-%m-%dT%H:%M:%SZ"))
                )
                try:
                    self._target(event, LambdaContext(function_name="CreateRunFunction"))
                except Exception:
                    logger.exception("scheduled invocation failed (Scheduler would retry, then dead-letter it)")
                self.fired.append((name, tick))
                fired += 1
            self._seen[name] = now
        return fired

    def run(self, stop: threading.Event, *, interval_seconds: float = 1.0) -> None:
        while not stop.is_set():
            try:
                self.fire_due()
            except Exception:
                logger.exception("local scheduler pass failed")
            stop.wait(interval_seconds)
