"""EventBridge Scheduler's clock, locally: fires the due ticks of the schedules in moto.

moto stores schedules but never fires them. This loop reads the enabled schedules of the group,
computes their ticks (cron with croniter, in the schedule's time zone; rate from its start), and
invokes the target (create_run's handler) with the schedule's input, ``<aws.scheduler.scheduled-
time>`` replaced by the tick, as Scheduler does. A schedule's first sighting is its baseline: no
tick fires for times before the schedule was seen (Flyte does not fire immediately on deploy).

Failures follow AWS: Scheduler invokes create_run *asynchronously*, so a tick that fails inside
the function is Lambda's to retry (``max_retries``, the template's ``EventInvokeConfig``, 2 by
default; on AWS a minute, then two, apart), and then goes to create_run's on-failure destination:
here ``on_failure``, a list (as ``local_stack.stream_poller`` records the stream's), on AWS the
``CreateRunFailureQueue``. Scheduler's own retries and dead-letter queue cover only ticks it could
not deliver, which cannot happen in process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from functions.task_registry.schedules import standard_cron
from functions.task_registry.triggers import SCHEDULED_TIME
from local_stack.lambda_runtime import LambdaContext

logger = logging.getLogger(__name__)

MAX_TICKS_PER_PASS = 100  # a stack that slept for days catches up at most this much per schedule
ASYNC_RETRIES = 2  # Lambda's default for asynchronous invocations (template: EventInvokeConfig)


@dataclass
class FailedTick:
    """What create_run's on-failure destination receives: the tick's event, and why it failed."""

    schedule: str
    event: dict[str, Any]
    reason: str
    attempts: int


def ticks(
    expression: str, timezone: str, *, after: datetime, until: datetime, start: datetime | None = None
) -> list[datetime]:
    """The schedule's ticks in (after, until], in UTC."""
    if expression.startswith("rate("):
        value, unit = expression[len("rate(") : -1].split()
        step = timedelta(**{unit.rstrip("s") + "s": int(value)})
        origin = start or after
        first = origin + step * max(0, int((after - origin) / step) + 1) if after >= origin else origin
        result: list[datetime] = []
        moment = first
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
        max_retries: int = ASYNC_RETRIES,
        retry_delay_seconds: float = 0.0,
    ) -> None:
        self._client = client
        self._group = group
        self._target = target
        self._clock = clock
        self._max_retries = max_retries
        self._retry_delay = retry_delay_seconds  # Lambda waits minutes; locally retries come at once
        self._seen: dict[str, datetime] = {}  # schedule -> the last time its ticks were fired up to
        self.fired: list[tuple[str, datetime]] = []
        self.on_failure: list[FailedTick] = []

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
                self._invoke(name, event)
                self.fired.append((name, tick))
                fired += 1
            self._seen[name] = now
        return fired

    def _invoke(self, schedule: str, event: dict[str, Any]) -> None:
        """Lambda's asynchronous invocation: the first attempt and ``max_retries`` retries, then
        the on-failure destination."""
        attempts = 0
        while True:
            attempts += 1
            try:
                self._target(event, LambdaContext(function_name="CreateRunFunction"))
                return
            except Exception as exc:
                if attempts > self._max_retries:
                    logger.exception(
                        "scheduled invocation failed %d times: sent to the on-failure destination", attempts
                    )
                    self.on_failure.append(
                        FailedTick(
                            schedule=schedule, event=event, reason=f"{type(exc).__name__}: {exc}", attempts=attempts
                        )
                    )
                    return
                logger.warning("scheduled invocation failed; Lambda retries it", extra={"attempt": attempts})
                time.sleep(self._retry_delay)

    def run(self, stop: threading.Event, *, interval_seconds: float = 1.0) -> None:
        while not stop.is_set():
            try:
                self.fire_due()
            except Exception:
                logger.exception("local scheduler pass failed")
            stop.wait(interval_seconds)
