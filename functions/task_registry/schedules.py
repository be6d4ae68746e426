"""Flyte schedules -> EventBridge Scheduler expressions (pure logic).

Flyte takes standard 5-field cron (minute hour day-of-month month day-of-week, with the
``@daily``-style descriptors) or a fixed rate; EventBridge takes ``cron(min hour dom month dow
year)`` with ``?`` in one of the two day fields and Sunday = 1, or ``rate(n unit)``. UTC unless a
time zone is given, as in Flyte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from flyteidl2.task import common_pb2

from runplane.connect.errors import invalid_argument

DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELD = re.compile(r"^[0-9A-Za-z*/,\-]+$")
_UNITS = {
    common_pb2.FixedRateUnit.FIXED_RATE_UNIT_MINUTE: "minute",
    common_pb2.FixedRateUnit.FIXED_RATE_UNIT_HOUR: "hour",
    common_pb2.FixedRateUnit.FIXED_RATE_UNIT_DAY: "day",
}


@dataclass(frozen=True)
class ScheduleExpression:
    expression: str  # EventBridge's
    timezone: str = "UTC"
    start: datetime | None = None


def schedule_expression(spec: common_pb2.TriggerAutomationSpec) -> ScheduleExpression:
    schedule = spec.schedule
    if schedule.HasField("rate"):
        rate = schedule.rate
        unit = _UNITS.get(rate.unit)
        if rate.value < 1 or unit is None:
            raise invalid_argument(
                "automation_spec.schedule.rate needs a positive value and a unit (minute, hour, day)"
            )
        start = rate.start_time.ToDatetime() if rate.HasField("start_time") else None
        return ScheduleExpression(f"rate({rate.value} {unit}{'s' if rate.value > 1 else ''})", start=start)
    expression, timezone = schedule.cron.expression or schedule.cron_expression, schedule.cron.timezone or "UTC"
    if not expression:
        raise invalid_argument("automation_spec.schedule needs a cron expression or a rate")
    return ScheduleExpression(eventbridge_cron(expression), timezone=timezone)


def eventbridge_cron(expression: str) -> str:
    text = DESCRIPTORS.get(expression.strip().lower(), expression.strip())
    fields = text.split()
    if len(fields) != 5 or not all(_FIELD.match(f) for f in fields):
        raise invalid_argument(f"automation_spec.schedule: {expression!r} is not a 5-field cron expression")
    minute, hour, dom, month, dow = fields
    if dom != "*" and dow != "*":
        raise invalid_argument(
            f"automation_spec.schedule: {expression!r} restricts both day fields, which EventBridge cannot"
        )
    if dow == "*":
        dow = "?"
    else:
        dom = "?"
        dow = re.sub(r"\d+", lambda m: str(int(m.group()) % 7 + 1), dow)  # Sunday: 0 -> 1
    return f"cron({minute} {hour} {dom} {month} {dow} *)"


def standard_cron(eventbridge: str) -> str:
    """The inverse, for the local stack's scheduler (croniter speaks standard cron)."""
    minute, hour, dom, month, dow, _year = eventbridge[len("cron(") : -1].split()
    dom = "*" if dom == "?" else dom
    dow = "*" if dow == "?" else re.sub(r"\d+", lambda m: str((int(m.group()) - 1) % 7), dow)
    return f"{minute} {hour} {dom} {month} {dow}"
