"""Lambda entry point of data_proxy: API Gateway HTTP API -> ClusterService and DataProxyService.

It also takes every route no other function serves, so a procedure this control plane does not
implement answers Connect's ``unimplemented`` (501), never API Gateway's 404.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flyteidl2.cluster import payload_pb2 as cluster
from flyteidl2.dataproxy import dataproxy_service_pb2 as proxy

from functions.data_proxy.service import DataProxy
from runplane.blobs import BlobStore
from runplane.connect.apigateway import handle_http_event
from runplane.connect.router import ConnectRouter
from runplane.logs import function_logger
from runplane.settings import api_settings
from runplane.store import ActionStore

logger = function_logger("data_proxy")

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


PROCEDURES = {
    f"{CLUSTER}/SelectCluster": (cluster.SelectClusterRequest, DataProxy.select_cluster),
    f"{DATA_PROXY}/CreateUploadLocation": (proxy.CreateUploadLocationRequest, DataProxy.create_upload_location),
    f"{DATA_PROXY}/UploadInputs": (proxy.UploadInputsRequest, DataProxy.upload_inputs),
    f"{DATA_PROXY}/GetActionData": (proxy.GetActionDataRequest, DataProxy.get_action_data),
}
router.mount(PROCEDURES, data_proxy)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle_http_event(router, event)
