"""Lambda entry point of data_proxy: API Gateway HTTP API -> ClusterService and DataProxyService
(TailLogs, a server stream, in ``task_logs``).

It also takes every route no other function serves, so a procedure this control plane does not
implement answers Connect's ``unimplemented`` (501), never API Gateway's 404.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flyteidl2.cluster import payload_pb2 as cluster
from flyteidl2.dataproxy import dataproxy_service_pb2 as proxy

from functions.data_proxy.service import DataProxy
from functions.data_proxy.task_logs import LogTail
from runplane.aws.blobs import BlobStore
from runplane.aws.log_store import ContainerLogs
from runplane.connect.apigateway import handle_http_event
from runplane.connect.router import ConnectRouter, Procedures
from runplane.ops.logs import function_logger
from runplane.ops.metrics import function_metrics
from runplane.ops.settings import api_settings, task_log_settings
from runplane.table.actions import ActionStore

logger = function_logger("data_proxy")
metrics = function_metrics("data_proxy")  # EMF lines, written as each invocation ends

CLUSTER = "/flyteidl2.cluster.ClusterService"
DATA_PROXY = "/flyteidl2.dataproxy.DataProxyService"

router = ConnectRouter()


@cache
def data_proxy() -> DataProxy:
    """Built on the first request of a container and reused by every later one."""
    settings = api_settings()
    blobs = BlobStore()
    return DataProxy(
        store=ActionStore(table_name=settings.actions_table, blobs=blobs),
        blobs=blobs,
        bucket=settings.data_bucket,
        namespace=settings.namespace,
    )


PROCEDURES: Procedures[DataProxy] = {
    f"{CLUSTER}/SelectCluster": (cluster.SelectClusterRequest, DataProxy.select_cluster),
    f"{DATA_PROXY}/CreateUploadLocation": (proxy.CreateUploadLocationRequest, DataProxy.create_upload_location),
    f"{DATA_PROXY}/UploadInputs": (proxy.UploadInputsRequest, DataProxy.upload_inputs),
    f"{DATA_PROXY}/GetActionData": (proxy.GetActionDataRequest, DataProxy.get_action_data),
}
router.mount(PROCEDURES, data_proxy)


@cache
def log_tail() -> LogTail:
    settings, logs = api_settings(), task_log_settings()
    return LogTail(
        store=ActionStore(table_name=settings.actions_table),
        logs=ContainerLogs(log_group=logs.log_group),
        follow_seconds=logs.follow_seconds,
    )


STREAMS: Procedures[LogTail] = {
    f"{DATA_PROXY}/TailLogs": (proxy.TailLogsRequest, LogTail.tail_logs),
}
router.mount(STREAMS, log_tail, streaming=True)


@metrics.flush_after
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_http_event(router, event)
