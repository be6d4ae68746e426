"""The adaptive poll of a child watch: fast after an end, backing off to the busy or quiet interval."""

from __future__ import annotations

from functions.read_runs.child_watch import FAST_POLLS, PollPace


def _after(pace: PollPace, polls: int, *, in_flight: bool) -> list[float]:
    seen = []
    for _ in range(polls):
        pace.polled(ended=False, in_flight=in_flight)
        seen.append(pace.seconds)
    return seen


def test_fast_after_an_end_then_backs_off_to_the_quiet_interval() -> None:
    pace = PollPace(fast=0.05, busy=0.2, idle=1.0)
    assert pace.seconds == 0.05
    seen = _after(pace, 20, in_flight=False)
    assert seen[: FAST_POLLS - 1] == [0.05] * (FAST_POLLS - 1)
    assert seen == sorted(seen)
    assert seen[-1] == 1.0
    pace.polled(ended=True, in_flight=False)
    assert pace.seconds == 0.05


def test_a_child_in_flight_caps_the_interval_at_the_busy_one() -> None:
    pace = PollPace(fast=0.05, busy=0.2, idle=1.0)
    _after(pace, 20, in_flight=False)
    assert _after(pace, 3, in_flight=True) == [0.2, 0.2, 0.2]
