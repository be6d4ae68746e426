"""RunService reads: details of runs and actions, action lists, and watches of action details;
and the watch of a parent's children the SDK runs inside a task (ActionsService/WatchForUpdates,
StateService/Watch: ``child_updates``).

Every read is a GetItem or a Query on the run's partition; nothing here writes. Watches are
buffered server streams: the current state, then, if the action has not ended, a long-poll for
the next change (up to the watch window), then the end of the stream; Flyte's SDK subscribes again
until the action ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flyteidl2.actions import actions_service_pb2 as actions
from flyteidl2.common.identifier_pb2 import ActionIdentifier
from flyteidl2.workflow import run_service_pb2 as runs
from flyteidl2.workflow import state_service_pb2 as state
from flyteidl2.workflow.run_definition_pb2 import Run

from functions.read_runs.action_listing import ACTIONS
from functions.read_runs.action_tree import ActionFilter, enriched_actions
from functions.read_runs.child_updates import family_updates
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
from runplane.table.records import RUN_INDEX_NAME, ActionRecord

WATCH_POLL_SECONDS = 0.5  # one GetItem per poll; the SDK itself re-polls every 0.5 s
# A child watch's window: the SDK's informer waits 5 s for the sentinel when it starts, and a
# buffered stream delivers the sentinel only when it ends, so a child watch ends sooner than that
# (the informer reconnects a second later and is sent everything again).
CHILD_WATCH_WINDOW_SECONDS = 4.0
WATCH_RUNS_LIMIT = 100  # Flyte's initial WatchRuns listing


class RunReader:
    def __init__(
        self,
        *,
        store: ActionStore,
        tokens: PageTokens,
        watch_window_seconds: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        namespace: str = "flyte",
        run_index: str = RUN_INDEX_NAME,
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._run_index = run_index  # the run index ListRuns reads (runplane.ops.settings.ReadSettings)
        self._window = watch_window_seconds
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

    def watch_action_details(self, request: runs.WatchActionDetailsRequest) -> list[runs.WatchActionDetailsResponse]:
        key = action_key(request.action_id)
        return [
            runs.WatchActionDetailsResponse(details=action_details(record, self._store.list_events(key)))
            for record in self._watch(key, what=f"action {key}")
        ]

    def watch_run_details(self, request: runs.WatchRunDetailsRequest) -> list[runs.WatchRunDetailsResponse]:
        key = run_key(request.run_id).action("a0")
        return [
            runs.WatchRunDetailsResponse(details=run_details(record, self._store.list_events(key)))
            for record in self._watch(key, what=f"run {key.run_key}")
        ]

    def watch_runs(self, request: runs.WatchRunsRequest) -> list[runs.WatchRunsResponse]:
        """The newest runs of the target, then the runs among them that change within the window."""
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

        first = snapshot()
        frames = [runs.WatchRunsResponse(runs=list(first.values()))]
        deadline = self._monotonic() + self._window
        while self._monotonic() < deadline:
            self._sleep(WATCH_POLL_SECONDS * 2)
            changed = [run for name, run in snapshot().items() if first.get(name) != run]
            if changed:
                frames.append(runs.WatchRunsResponse(runs=changed))
                break
        return frames

    def watch_actions(self, request: runs.WatchActionsRequest) -> list[runs.WatchActionsResponse]:
        """Every action of the run, enriched, then those that change within the window."""
        run = run_key(request.run_id)
        action_filter = ActionFilter(list(request.filter))
        if self._store.get_action(run.action("a0"), resolve_specs=False) is None:
            raise not_found(f"run {run} not found")
        first = enriched_actions(self._store.list_actions(run), action_filter)
        frames = [runs.WatchActionsResponse(enriched_actions=list(first.values()))]
        deadline = self._monotonic() + self._window
        while self._monotonic() < deadline:
            self._sleep(WATCH_POLL_SECONDS * 2)  # a Query of the whole run: poll less often
            current = enriched_actions(self._store.list_actions(run), action_filter)
            changed = [action for name, action in current.items() if first.get(name) != action]
            if changed:
                frames.append(runs.WatchActionsResponse(enriched_actions=changed))
                break
        return frames

    def watch_for_updates(self, request: actions.WatchForUpdatesRequest) -> list[actions.WatchForUpdatesResponse]:
        """ActionsService/WatchForUpdates: the parent and its direct children, the sentinel, then
        the ones that change within the window."""
        return [
            actions.WatchForUpdatesResponse(control_message=state.ControlMessage(sentinel=True))
            if update is None
            else actions.WatchForUpdatesResponse(action_update=update)
            for update in self._watch_children(request.parent_action_id)
        ]

    def watch_state(self, request: state.WatchRequest) -> list[state.WatchResponse]:
        """StateService/Watch: the same stream as WatchForUpdates, in StateService's messages."""
        return [
            state.WatchResponse(control_message=state.ControlMessage(sentinel=True))
            if update is None
            else state.WatchResponse(action_update=update)
            for update in self._watch_children(request.parent_action_id)
        ]

    def _watch_children(self, parent_id: ActionIdentifier) -> list[state.ActionUpdate | None]:
        """The updates to send, None standing for the sentinel. Every poll is one Query of the
        run's partition (``list_action_states``); the stream ends at the first change, as the
        other watches do, or at the end of the window, and at once when the parent has ended. The
        SDK's informer then subscribes again and is sent everything again, so nothing is missed
        between two streams."""
        key = action_key(parent_id, field="parent_action_id")

        def read() -> dict[str, state.ActionUpdate] | None:
            return family_updates(
                self._store.list_action_states(key.run_key), parent=key.name, namespace=self._namespace
            )

        sent = read()
        if sent is None:
            raise not_found(f"action {key} not found")
        frames: list[state.ActionUpdate | None] = [*sent.values(), None]
        if phases.is_terminal(sent[key.name].phase):
            return frames
        deadline = self._monotonic() + min(self._window, CHILD_WATCH_WINDOW_SECONDS)
        while self._monotonic() < deadline:
            self._sleep(WATCH_POLL_SECONDS)
            current = read() or {}
            changed = [update for name, update in current.items() if sent.get(name) != update]
            if changed:
                return frames + changed
        return frames

    def _watch(self, key: ActionKey, *, what: str) -> list[ActionRecord]:
        """The current record, and the first changed one within the window unless it ended."""
        record = self._require(key, what=what)
        if phases.is_terminal(record.phase):
            return [record]
        deadline = self._monotonic() + self._window
        while self._monotonic() < deadline:
            self._sleep(WATCH_POLL_SECONDS)
            current = self._store.get_action(key)
            if current is not None and current.version != record.version:
                return [record, current]
        return [record]

    def _require(self, key: ActionKey, *, what: str) -> ActionRecord:
        record = self._store.get_action(key)
        if record is None:
            raise not_found(f"{what} not found")
        return record
