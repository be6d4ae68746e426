"""Lambda entry point of read_runs: API Gateway HTTP API -> RunService reads and the watches of a
parent's children (ActionsService/WatchForUpdates, StateService/Watch); read-only rights.

Thin by design: the procedures it serves, then ``service`` does the work.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flyteidl2.actions import actions_service_pb2 as actions
from flyteidl2.workflow import run_service_pb2 as runs
from flyteidl2.workflow import state_service_pb2 as state

from functions.read_runs.service import RunReader
from runplane.aws.blobs import BlobStore
from runplane.connect.apigateway import handle_http_event
from runplane.connect.pages import PageTokens
from runplane.connect.router import ConnectRouter, Procedures
from runplane.ops.logs import function_logger
from runplane.ops.metrics import function_metrics
from runplane.ops.settings import read_settings
from runplane.table.actions import ActionStore

logger = function_logger("read_runs")
metrics = function_metrics("read_runs")  # EMF lines, written as each invocation ends

RUNS = "/flyteidl2.workflow.RunService"
ACTIONS = "/flyteidl2.actions.ActionsService"
STATE = "/flyteidl2.workflow.StateService"

router = ConnectRouter()


@cache
def reader() -> RunReader:
    """Built on the first request of a container and reused by every later one."""
    settings = read_settings()
    return RunReader(
        store=ActionStore(table_name=settings.actions_table, blobs=BlobStore()),
        tokens=PageTokens(secret=settings.page_token_secret.encode()),
        watch_window_seconds=settings.watch_window_seconds,
        namespace=settings.namespace,
        run_index=settings.run_index,
    )


UNARY: Procedures[RunReader] = {
    f"{RUNS}/GetRunDetails": (runs.GetRunDetailsRequest, RunReader.get_run_details),
    f"{RUNS}/GetActionDetails": (runs.GetActionDetailsRequest, RunReader.get_action_details),
    f"{RUNS}/ListActions": (runs.ListActionsRequest, RunReader.list_actions),
    f"{RUNS}/ListRuns": (runs.ListRunsRequest, RunReader.list_runs),
    f"{RUNS}/GetActionLogContext": (runs.GetActionLogContextRequest, RunReader.get_action_log_context),
}
STREAMS: Procedures[RunReader] = {
    f"{RUNS}/WatchActionDetails": (runs.WatchActionDetailsRequest, RunReader.watch_action_details),
    f"{RUNS}/WatchRunDetails": (runs.WatchRunDetailsRequest, RunReader.watch_run_details),
    f"{RUNS}/WatchRuns": (runs.WatchRunsRequest, RunReader.watch_runs),
    f"{RUNS}/WatchActions": (runs.WatchActionsRequest, RunReader.watch_actions),
    f"{ACTIONS}/WatchForUpdates": (actions.WatchForUpdatesRequest, RunReader.watch_for_updates),
    f"{STATE}/Watch": (state.WatchRequest, RunReader.watch_state),
}
router.mount(UNARY, reader)
router.mount(STREAMS, reader, streaming=True)


@metrics.flush_after
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_http_event(router, event)
