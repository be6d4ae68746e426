"""moto's server on loopback as the local AWS: the table with its stream, and the data bucket.

Never create an event source mapping in moto: without Docker it cannot run the handler and it
empties the stream shard. ``local_stack.stream_poller`` plays that role.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from local_stack.template import table_definition

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

logger = logging.getLogger(__name__)

REGION = "us-east-1"
SCHEDULE_GROUP = "flyte-triggers"
# The task pods' log group, as template.yaml's TaskLogGroup defaults to for the cluster "flyte":
# Container Insights' application group (runplane.aws.log_store).
TASK_LOG_GROUP = "/aws/containerinsights/flyte/application"
ACCOUNT = "123456789012"  # moto's
# Stand-ins for the template's ARNs: moto records them, the local scheduler calls create_run itself.
CREATE_RUN_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:CreateRunFunction"
SCHEDULER_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/SchedulerInvokeCreateRun"
SCHEDULER_DEAD_LETTER_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:ScheduleDeadLetterQueue"
# Credentials moto accepts; set so boto3 never looks for real ones on a developer's machine.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@dataclass(frozen=True)
class AwsResources:
    endpoint: str
    table_name: str
    bucket: str
    stream_arn: str


_DYNAMODB_LOCK = threading.RLock()
_PATCHED: set[str] = set()  # the moto patches below this process has applied


class _TablesUncopied:
    """``copy`` as moto's DynamoDB backend sees it during a TransactWriteItems: tables are not
    copied (``transact_write_items`` below keeps the items the call touches and puts them back
    on a rollback instead); everything else is, as before (an update's old image, for one)."""

    def __init__(self, table_type: type) -> None:
        self._table_type = table_type

    def deepcopy(self, value: object) -> object:
        return value if isinstance(value, self._table_type) else copy.deepcopy(value)

    def __getattr__(self, name: str) -> object:
        return getattr(copy, name)


def _touched_items(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
    """(table, hash key, range key, a copy of the item or None) for each item a transaction names."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    touched = []
    for entry in transact_items:
        for operation in entry.values():
            table = backend.tables.get(operation.get("TableName")) if isinstance(operation, dict) else None
            key = (operation.get("Item") if "Put" in entry else operation.get("Key")) if table is not None else None
            if table is None or not key or table.hash_key_attr not in key:
                continue  # moto refuses it before it writes anything
            if table.range_key_attr is not None and table.range_key_attr not in key:
                continue
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr is not None else None
            current = table.get_item(hash_key, range_key)
            touched.append((table, hash_key, range_key, copy.deepcopy(current) if current is not None else None))
    return touched


def _put_back(touched: list[tuple[Any, Any, Any, Any]]) -> None:
    for table, hash_key, range_key, item in reversed(touched):
        if range_key is None:
            if item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
        elif item is None:
            table.items[hash_key].pop(range_key, None)
        else:
            table.items[hash_key][range_key] = item


def make_moto_dynamodb_atomic() -> None:
    """Make moto's DynamoDB atomic, as the real one is. Two moto behaviours break it:

    - TransactWriteItems writes, then, if a condition fails, puts back a deep copy of each table
      taken before. The copy carries a *new* stream shard object, while open shard iterators (our
      stream poller's) still point at the old one: every later record becomes invisible to them.
      After a rollback we put the original shard back, trimmed to its length before the call.
    - Its server handles requests in threads without a lock, so a request running during a
      transaction sees its rolled-back writes or loses its own write to the restore. One lock
      around DynamoDB and DynamoDB Streams request handling serialises them.

    And one cost: that deep copy of the whole table is taken once per *item* of the transaction,
    so a 100-item transaction on a table of 1,000 items copied 100,000 items (seconds, where
    DynamoDB takes milliseconds). The rollback only needs the items the transaction names: they
    are copied before the call and put back after a cancellation, and the tables are not copied.
    """
    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    if "dynamodb atomic" in _PATCHED:
        return
    original_transact = DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        shards = {
            name: (table.stream_shard, len(table.stream_shard.items))
            for name, table in self.tables.items()
            if table.stream_shard is not None
        }
        touched = _touched_items(self, transact_items)
        dynamodb_models.copy = _TablesUncopied(Table)  # the module's name for `copy`, during this call only
        try:
            return original_transact(self, transact_items)
        except Exception:
            _put_back(touched)
            for name, (shard, length) in shards.items():
                table = self.tables.get(name)
                if table is not None:
                    del shard.items[length:]  # the stream records of the writes just undone
                    shard.table = table
                    table.stream_shard = shard
            raise
        finally:
            dynamodb_models.copy = copy

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]  # the patch

    for handler in (DynamoHandler, DynamoDBStreamsHandler):
        original_call = handler.call_action

        def call_action(self, _original=original_call):
            with _DYNAMODB_LOCK:
                return _original(self)

        handler.call_action = call_action  # type: ignore[method-assign]  # the patch
    _PATCHED.add("dynamodb atomic")


def make_moto_s3_check_content_md5() -> None:
    """S3 refuses a PUT whose body does not match its Content-MD5 (``BadDigest``); moto stores it.
    Signed uploads rely on that check, so the local stack restores it."""
    import base64
    import hashlib

    from moto.s3.exceptions import S3ClientError
    from moto.s3.responses import S3Response

    if "s3 content-md5" in _PATCHED:
        return
    original = S3Response.put_object

    def put_object(self):
        announced = self.headers.get("Content-MD5")
        if announced and base64.b64encode(hashlib.md5(self.body or b"").digest()).decode() != announced:
            raise S3ClientError("BadDigest", "The Content-MD5 you specified did not match what we received.")
        return original(self)

    S3Response.put_object = put_object  # type: ignore[method-assign]  # the patch
    _PATCHED.add("s3 content-md5")


class MotoServer:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: ThreadedMotoServer | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "the moto server is not started"
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def start(self) -> MotoServer:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        make_moto_dynamodb_atomic()
        make_moto_s3_check_content_md5()
        self._server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def aws_environment(endpoint: str) -> dict[str, str]:
    """Environment that points every boto3 client of this process at moto."""
    return {
        **FAKE_CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        # botocore >= 1.44 sends streams calls to an account-based host unless told not to.
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }


def provision(*, endpoint: str, table_name: str, bucket: str) -> AwsResources:
    """Create the table (as template.yaml defines it), the bucket, the schedule group and the task
    log group; idempotent."""
    import boto3

    session = boto3.session.Session(
        region_name=REGION,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    try:
        description = dynamodb.describe_table(TableName=table_name)["Table"]
    except dynamodb.exceptions.ResourceNotFoundException:
        description = dynamodb.create_table(TableName=table_name, **table_definition())["TableDescription"]
    scheduler = session.client("scheduler", endpoint_url=endpoint)
    groups = {g["Name"] for g in scheduler.list_schedule_groups().get("ScheduleGroups", [])}
    if SCHEDULE_GROUP not in groups:
        scheduler.create_schedule_group(Name=SCHEDULE_GROUP)
    s3 = session.client("s3", endpoint_url=endpoint)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    logs = session.client("logs", endpoint_url=endpoint)
    # Where Container Insights ships the task pods' output; the local executor writes there.
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=TASK_LOG_GROUP)
    return AwsResources(
        endpoint=endpoint, table_name=table_name, bucket=bucket, stream_arn=description["LatestStreamArn"]
    )
