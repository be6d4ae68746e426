"""Flyte's mergeEvents, rebuilt: the attempts of ActionDetails from recorded events."""

from flyteidl2.core.execution_pb2 import TaskLog
from flyteidl2.workflow import run_definition_pb2 as wf

from functions.read_runs.attempts import attempts_from_events, merge_events
from runplane.flyte import phases


def event(phase, second, *, attempt=1, reported=None, **fields):
    item = wf.ActionEvent(attempt=attempt, phase=phase, **fields)
    item.updated_time.FromSeconds(second)
    if reported is not None:
        item.reported_time.FromSeconds(reported)
    return item


def test_attempts_are_grouped_and_sorted():
    attempts = attempts_from_events([event(phases.RUNNING, 5, attempt=2), event(phases.FAILED, 3, attempt=1)])
    assert [a.attempt for a in attempts] == [1, 2]


def test_the_terminal_event_decides_and_times_follow():
    attempt = merge_events(
        [
            event(phases.QUEUED, 10),
            event(phases.RUNNING, 20),
            event(phases.SUCCEEDED, 30, cluster="c1"),
            event(phases.RUNNING, 40),  # a late non-terminal event does not undo the end
        ]
    )
    assert attempt.phase == phases.SUCCEEDED and attempt.cluster == "c1"
    assert attempt.start_time.seconds == 10 and attempt.end_time.seconds == 30
    assert [(t.phase, t.start_time.seconds, t.end_time.seconds) for t in attempt.phase_transitions] == [
        (phases.QUEUED, 10, 20),
        (phases.RUNNING, 20, 30),
        (phases.SUCCEEDED, 30, 30),
    ]


def test_reported_time_orders_events_when_every_event_has_one():
    attempt = merge_events([event(phases.RUNNING, 20, reported=2), event(phases.QUEUED, 30, reported=1)])
    assert attempt.phase == phases.RUNNING and attempt.start_time.seconds == 30
    assert not attempt.HasField("end_time")


def test_logs_newest_wins_sorted_by_name_and_log_context_marks_logs_available():
    first = event(phases.RUNNING, 10, log_info=[TaskLog(name="b", uri="old"), TaskLog(name="a", uri="a1")])
    second = event(phases.RUNNING, 20, log_info=[TaskLog(name="b", uri="new")])
    second.log_context.SetInParent()
    second.outputs.report_uri = "s3://r"
    attempt = merge_events([first, second])
    assert [(log.name, log.uri) for log in attempt.log_info] == [("a", "a1"), ("b", "new")]
    assert attempt.logs_available and attempt.outputs.report_uri == "s3://r"


def test_errors_and_cluster_events_come_through():
    failed = event(phases.FAILED, 20, error_info=wf.ErrorInfo(message="oom", kind=wf.ErrorInfo.KIND_USER))
    failed.cluster_events.add(message="killed")
    running = event(phases.RUNNING, 10)
    running.cluster_events.add(message="scheduled")
    attempt = merge_events([failed, running])
    assert attempt.error_info.message == "oom"
    assert [e.message for e in attempt.cluster_events] == ["scheduled", "killed"]


def test_the_oldest_terminal_event_wins_as_in_flytes_merge_events():
    """[SUCCEEDED t=30, ABORTED t=90]: the executor's ABORTED on the TTL deletion of an ended
    attempt (handleAbortAndFinalize) does not undo the success, nor move its end."""
    succeeded = event(phases.SUCCEEDED, 30, cluster="c1")
    succeeded.outputs.output_uri = "s3://out/outputs.pb"
    attempt = merge_events([event(phases.RUNNING, 10), succeeded, event(phases.ABORTED, 90, cluster="c2")])
    assert attempt.phase == phases.SUCCEEDED and attempt.cluster == "c1"
    assert attempt.end_time.seconds == 30 and attempt.outputs.output_uri == "s3://out/outputs.pb"
    assert [t.phase for t in attempt.phase_transitions] == [phases.RUNNING, phases.SUCCEEDED]
    failed_then_aborted = merge_events(
        [event(phases.FAILED, 30, error_info=wf.ErrorInfo(message="oom")), event(phases.ABORTED, 40)]
    )
    assert failed_then_aborted.phase == phases.FAILED and failed_then_aborted.error_info.message == "oom"


def test_a_retried_attempt_without_a_terminal_event_ends_when_the_next_starts():
    attempts = attempts_from_events(
        [
            event(phases.QUEUED, 10),
            event(phases.RUNNING, 20),
            event(phases.QUEUED, 50, attempt=2),
            event(phases.RUNNING, 60, attempt=2),
            event(phases.QUEUED, 80, attempt=3),
        ]
    )
    first, second, third = attempts
    assert (first.phase, first.end_time.seconds) == (phases.FAILED, 50)
    assert [(t.phase, t.end_time.seconds) for t in first.phase_transitions] == [
        (phases.QUEUED, 20),
        (phases.RUNNING, 50),
    ]
    assert (second.phase, second.end_time.seconds) == (phases.FAILED, 80)
    assert third.phase == phases.QUEUED and not third.HasField("end_time")  # the current attempt runs on


def test_an_attempt_with_its_own_terminal_event_keeps_it_when_retried():
    first, second = attempts_from_events(
        [event(phases.FAILED, 30, error_info=wf.ErrorInfo(message="boom")), event(phases.QUEUED, 50, attempt=2)]
    )
    assert (first.phase, first.end_time.seconds, first.error_info.message) == (phases.FAILED, 30, "boom")
    assert second.phase == phases.QUEUED
