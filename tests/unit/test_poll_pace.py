"""The adaptive poll of a child watch: fast after a change, backing off to the quiet interval."""

from __future__ import annotations

from functions.read_runs.child_watch import PollPace


def test_fast_after_a_change_and_backs_off_while_quiet() -> None:
    pace = PollPace(fast=0.05, idle=1.0)
    assert pace.seconds == 0.05
    seen = []
    for _ in range(12):
        pace.polled(changed=False)
        seen.append(pace.seconds)
    assert seen == sorted(seen)
    assert seen[-1] == 1.0
    pace.polled(changed=True)
    assert pace.seconds == 0.05


def test_an_idle_interval_under_the_fast_one_is_the_fast_one() -> None:
    pace = PollPace(fast=0.05, idle=0.01)
    pace.polled(changed=False)
    assert pace.seconds == 0.05
