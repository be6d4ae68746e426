"""RunService reads: details of runs and actions, action lists, and watches of action details;
and the watch of a parent's children the SDK runs inside a task (ActionsService/WatchForUpdates,
StateService/Watch: ``child_updates``).

Every read is a GetItem or a Query (of the run's partition, or of a family's changes); nothing
here writes. Watches are generators of frames: the current state (and, for a parent's children,
the sentinel), then each change as a poll finds it, until the watch's window ends; then a clean
end of stream, from which Flyte's SDK subscribes again. Streamed (``streaming=True``: the
function URL in RESPONSE_STREAM mode, the local front) every change goes out as it is found;
buffered (API Gateway's HTTP API, which cannot stream) the watch ends at the first change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime

from flyteidl2.actions import actions_service_pb2 as actions
from flyteidl2.common.identifier_pb2 import ActionIdentifier
from flyteidl2.workflow import run_service_pb2 as runs
from flyteidl2.workflow import state_service_pb2 as state
from flyteidl2.workflow.run_definition_pb2 import Run

from functions.read_runs.action_listing import ACTIONS
from functions.read_runs.action_tree import ActionFilter, enriched_actions
from functions.read_runs.child_watch import (
    BUSY_POLL_SECONDS,
    BUSY_STREAM_LIMIT_SECONDS,
    FAST_POLL_SECONDS,
    IDLE_POLL_SECONDS,
    ChildWatch,
    PollPace,
)
from functions.read_runs.details import action_details, run_details
from functions.read_runs.run_listing import read_page, run_query
from runplane.connect.errors import invalid_argument, not_found
from runplane.connect.listing import list_page
from runplane.connect.pages import PageTokens, page_limit
from runplane.connect.transformers import action_message, run_message
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.flyte.validation import action_key, run_key
from runplane.table.actions import ActionStore
from runplane.table.attempt_logs import attempt_logs
from runplane.table.records import RUN_INDEX_NAME, ActionRecord, utcnow

WATCH_POLL_SECONDS = 0.5  # one GetItem per poll; the SDK itself re-polls every 0.5 s
# A buffered child watch's window: the SDK's informer waits 5 s for the sentinel when it starts,
# and a buffered stream delivers the sentinel only when it ends, so it ends sooner than that (the
# informer reconnects a second later and is sent everything again).
CHILD_WATCH_WINDOW_SECONDS = 4.0
WATCH_RUNS_LIMIT = 100  # Flyte's initial WatchRuns listing


class RunReader:
    def __init__(
        self,
        *,
        store: ActionStore,
        tokens: PageTokens,
        watch_window_seconds: float = 20.0,
        streaming: bool = False,
        change_poll_seconds: float = IDLE_POLL_SECONDS,
        busy_poll_seconds: float = BUSY_POLL_SECONDS,
        fast_poll_seconds: float = FAST_POLL_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = utcnow,
        namespace: str = "flyte",
        run_index: str = RUN_INDEX_NAME,
    ) -> None:
        """``streaming``: whether the answer reaches the client frame by frame (the streaming
        route); a watch then sends every change until its window ends. Buffered (API Gateway's
        HTTP API), a watch ends at the first change, since nothing reaches the client before the
        end. ``change_poll_seconds``: how often a quiet watch of a parent's children reads its changes;
        ``busy_poll_seconds`` while a child is in flight; ``fast_poll_seconds`` right after it starts and
        after each child's end (``child_watch.PollPace``)."""
        self._store = store
        self._tokens = tokens
        self._run_index = run_index  # the run index ListRuns reads (runplane.ops.settings.ReadSettings)
        self._window = watch_window_seconds
        self._streaming = streaming
        # Buffered, the sentinel arrives only with the end of the stream, and the SDK's informer
        # waits 5 s for it when it starts: a buffered child watch ends sooner than that.
        self._child_window = None if streaming else CHILD_WATCH_WINDOW_SECONDS
        self._change_poll_seconds = change_poll_seconds
        self._fast_poll_seconds = fast_poll_seconds
        self._busy_poll_seconds = busy_poll_seconds
        self._clock = clock
        self._namespace = namespace
        self._sleep = sleep
        self._monotonic = monotonic

    def get_run_details(self, request: runs.GetRunDetailsRequest) -> runs.GetRunDetailsResponse:
        key = run_key(request.run_id).action("a0")
        record = self._require(key, what=f"run {key.run_key}")
        return runs.GetRunDetailsResponse(details=run_details(record, self._store.list_events(key)))

    def get_action_details(self, request: runs.GetActionDetailsRequest) -> runs.GetActionDetailsResponse:
        key = action_key(request.action_id)
        record = self._require(key, what=f"action {key}")
        return runs.GetActionDetailsResponse(details=action_details(record, self._store.list_events(key)))

    def list_actions(self, request: runs.ListActionsRequest) -> runs.ListActionsResponse:
        """A run's actions with Flyte's filters, sorts and defaults (``action_listing``); a run
        that does not exist has none, as in Flyte."""
        run = run_key(request.run_id)
        page = list_page(
            ACTIONS,
            request.request,
            lambda: self._store.list_action_listings(run),
            tokens=self._tokens,
            scope=f"actions|{run}",
        )
        return runs.ListActionsResponse(actions=[action_message(r) for r in page.rows], token=page.token)

    def get_action_log_context(self, request: runs.GetActionLogContextRequest) -> runs.GetActionLogContextResponse:
        """Where an attempt's output is (``runplane.table.attempt_logs``); ``not_found`` for an attempt
        that never ran."""
        found = attempt_logs(self._store, action_key(request.action_id), request.attempt)
        return runs.GetActionLogContextResponse(log_context=found.log_context, cluster=found.cluster)

    def list_runs(self, request: runs.ListRunsRequest) -> runs.ListRunsResponse:
        query = run_query(request)
        limit = page_limit(request.request.limit)
        position = self._tokens.read(request.request.token, query=query.fingerprint)
        after = position.get("after") if position else None
        if position is not None and not isinstance(after, str):
            raise invalid_argument("request.token is malformed")
        records, last = read_page(self._store, query, limit=limit, after=after, index=self._run_index)
        token = self._tokens.issue(query=query.fingerprint, position={"after": last}) if last is not None else ""
        return runs.ListRunsResponse(runs=[run_message(record) for record in records], token=token)

    def watch_action_details(
        self, request: runs.WatchActionDetailsRequest
    ) -> Iterator[runs.WatchActionDetailsResponse]:
        key = action_key(request.action_id)
        for record in self._watch(key, what=f"action {key}"):
            yield runs.WatchActionDetailsResponse(details=action_details(record, self._store.list_events(key)))

    def watch_run_details(self, request: runs.WatchRunDetailsRequest) -> Iterator[runs.WatchRunDetailsResponse]:
        key = run_key(request.run_id).action("a0")
        for record in self._watch(key, what=f"run {key.run_key}"):
            yield runs.WatchRunDetailsResponse(details=run_details(record, self._store.list_events(key)))

    def watch_runs(self, request: runs.WatchRunsRequest) -> Iterator[runs.WatchRunsResponse]:
        """The newest runs of the target, then the runs among them that change, as they change."""
        target = request.WhichOneof("target")
        if target == "project_id":
            listing = runs.ListRunsRequest(project_id=request.project_id)
        elif target == "task_id":
            listing = runs.ListRunsRequest(task_id=request.task_id)
        else:
            raise invalid_argument(
                f"target {target or 'none'} is not supported: watch the runs of a project_id or task_id"
            )
        listing.request.limit = WATCH_RUNS_LIMIT

        def snapshot() -> dict[str, Run]:
            return {r.action.id.run.name: r for r in self.list_runs(listing).runs}

        sent = snapshot()
        yield runs.WatchRunsResponse(runs=list(sent.values()))
        for _ in self._polls(WATCH_POLL_SECONDS * 2):  # a ListRuns each: poll less often
            current = snapshot()
            changed = [run for name, run in current.items() if sent.get(name) != run]
            if changed:
                sent.update(current)
                yield runs.WatchRunsResponse(runs=changed)
                if not self._streaming:
                    return

    def watch_actions(self, request: runs.WatchActionsRequest) -> Iterator[runs.WatchActionsResponse]:
        """Every action of the run, enriched, then those that change, as they change."""
        run = run_key(request.run_id)
        action_filter = ActionFilter(list(request.filter))
        if self._store.get_action(run.action("a0"), resolve_specs=False) is None:
            raise not_found(f"run {run} not found")
        sent = enriched_actions(self._store.list_actions(run), action_filter)
        yield runs.WatchActionsResponse(enriched_actions=list(sent.values()))
        for _ in self._polls(WATCH_POLL_SECONDS * 2):  # a Query of the whole run: poll less often
            current = enriched_actions(self._store.list_actions(run), action_filter)
            changed = [action for name, action in current.items() if sent.get(name) != action]
            if changed:
                sent.update(current)
                yield runs.WatchActionsResponse(enriched_actions=changed)
                if not self._streaming:
                    return

    def watch_for_updates(self, request: actions.WatchForUpdatesRequest) -> Iterator[actions.WatchForUpdatesResponse]:
        """ActionsService/WatchForUpdates: the parent and its direct children, the sentinel, then
        each child's change as it is written."""
        for update in self._watch_children(request.parent_action_id):
            if update is None:
                yield actions.WatchForUpdatesResponse(control_message=state.ControlMessage(sentinel=True))
            else:
                yield actions.WatchForUpdatesResponse(action_update=update)

    def watch_state(self, request: state.WatchRequest) -> Iterator[state.WatchResponse]:
        """StateService/Watch: the same stream as WatchForUpdates, in StateService's messages."""
        for update in self._watch_children(request.parent_action_id):
            if update is None:
                yield state.WatchResponse(control_message=state.ControlMessage(sentinel=True))
            else:
                yield state.WatchResponse(action_update=update)

    def _watch_children(self, parent_id: ActionIdentifier) -> Iterator[state.ActionUpdate | None]:
        """The updates to send, None standing for the sentinel (``child_watch``)."""
        key = action_key(parent_id, field="parent_action_id")
        pace = PollPace(fast=self._fast_poll_seconds, busy=self._busy_poll_seconds, idle=self._change_poll_seconds)
        holder: list[ChildWatch] = []
        watch = ChildWatch(
            store=self._store,
            parent=key,
            namespace=self._namespace,
            polls=self._polls(
                lambda: pace.seconds,
                limit=self._child_window,
                busy=(lambda: holder[0].busy(within_seconds=self._window)) if self._streaming else None,
            ),
            streaming=self._streaming,
            clock=self._clock,
            pace=pace,
        )
        holder.append(watch)
        yield from watch

    def _polls(
        self,
        interval: float | Callable[[], float],
        *,
        limit: float | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> Iterator[int]:
        """One tick per poll, ``interval`` apart (or what it says before each poll), until the
        watch's window (or ``limit``) ends, or past it while ``busy`` says so, up to
        ``BUSY_STREAM_LIMIT_SECONDS``."""
        window = self._window if limit is None else min(self._window, limit)
        started = self._monotonic()
        deadline, hard = started + window, started + max(window, BUSY_STREAM_LIMIT_SECONDS)
        tick = 0
        while (now := self._monotonic()) < deadline or (busy is not None and now < hard and busy()):
            self._sleep(interval() if callable(interval) else interval)
            tick += 1
            yield tick

    def _watch(self, key: ActionKey, *, what: str) -> Iterator[ActionRecord]:
        """The current record, then each changed one (one GetItem a poll) until it ends."""
        record = self._require(key, what=what)
        yield record
        if phases.is_terminal(record.phase):
            return
        for _ in self._polls(WATCH_POLL_SECONDS):
            current = self._store.get_action(key)
            if current is not None and current.version != record.version:
                record = current
                yield record
                if phases.is_terminal(record.phase) or not self._streaming:
                    return

    def _require(self, key: ActionKey, *, what: str) -> ActionRecord:
        record = self._store.get_action(key)
        if record is None:
            raise not_found(f"{what} not found")
        return record
