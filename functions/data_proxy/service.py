"""The data proxy: signed uploads, offloaded inputs, and an action's inputs and outputs.

- CreateUploadLocation: a presigned S3 PUT for ``<project>/<domain>/<root>/<filename>``, bound to
  the content's MD5 (S3 refuses a body that does not match) and expiring.
- UploadInputs: the inputs stored content-addressed under the project/domain; the reference that
  CreateRun takes as ``offloaded_input_data``.
- GetActionData: the inputs an action was given and the outputs its latest attempt wrote where
  Flyte's executor writes them.
- SelectCluster: this control plane is the cluster (an empty endpoint means "the same one").
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

from flyteidl2.cluster import payload_pb2 as cluster
from flyteidl2.common.run_pb2 import OffloadedInputData
from flyteidl2.dataproxy import dataproxy_service_pb2 as proxy
from flyteidl2.task import common_pb2

from runplane.aws.blobs import BlobStore
from runplane.connect.errors import already_exists, invalid_argument, not_found
from runplane.flyte.identifiers import validate_scope_name
from runplane.flyte.output_paths import OUTPUTS_FILE, action_output_path
from runplane.flyte.validation import action_key
from runplane.table.actions import ActionStore

DEFAULT_UPLOAD_EXPIRY = timedelta(hours=1)
MAX_UPLOAD_EXPIRY = timedelta(days=7)  # S3's limit for SigV4 presigned URLs
MAX_UPLOAD_BYTES = 5 * 1024**3  # a single PUT's limit
INPUTS_FILE = "inputs.pb"


class DataProxy:
    def __init__(self, *, store: ActionStore, blobs: BlobStore, bucket: str, namespace: str = "flyte") -> None:
        self._store = store
        self._blobs = blobs
        self._bucket = bucket
        self._namespace = namespace

    def select_cluster(self, request: cluster.SelectClusterRequest) -> cluster.SelectClusterResponse:
        return cluster.SelectClusterResponse()

    def create_upload_location(self, request: proxy.CreateUploadLocationRequest) -> proxy.CreateUploadLocationResponse:
        project = validate_scope_name(request.project, field="project")
        domain = validate_scope_name(request.domain, field="domain")
        filename = _path_segment(request.filename, field="filename")
        if len(request.content_md5) != 16:
            raise invalid_argument("content_md5 must be the 16-byte MD5 of the content")
        if request.content_length < 0 or request.content_length > MAX_UPLOAD_BYTES:
            raise invalid_argument(f"content_length must be between 0 and {MAX_UPLOAD_BYTES} bytes")
        root = (
            _path_segment(request.filename_root, field="filename_root")
            if request.filename_root
            else request.content_md5.hex()
        )
        expires_in = request.expires_in.ToTimedelta() if request.HasField("expires_in") else DEFAULT_UPLOAD_EXPIRY
        if not timedelta(0) < expires_in <= MAX_UPLOAD_EXPIRY:
            raise invalid_argument("expires_in must be positive and at most 7 days")
        key = f"{project}/{domain}/{root}/{filename}"
        if request.filename_root:  # a name the caller chose: only the content already there may go there
            self._refuse_other_content(key=key, content_md5=request.content_md5)
        md5 = base64.b64encode(request.content_md5).decode()
        params: dict[str, str | int] = {"Bucket": self._bucket, "Key": key, "ContentMD5": md5}
        if request.content_length:
            params["ContentLength"] = request.content_length
        url = self._blobs.client.generate_presigned_url(
            "put_object", Params=params, ExpiresIn=int(expires_in.total_seconds())
        )
        response = proxy.CreateUploadLocationResponse(
            signed_url=url, native_url=f"s3://{self._bucket}/{key}", headers={"Content-MD5": md5}
        )
        response.expires_at.FromDatetime(datetime.now(UTC) + expires_in)
        return response

    def _refuse_other_content(self, *, key: str, content_md5: bytes) -> None:
        """Write-once, as Flyte's data proxy (``checkFileExists``): an object already at ``key``
        may be uploaded again only with the same MD5 (its single-part ETag), so a member of the
        project cannot replace another's code bundle. Without filename_root the key is the MD5
        itself. Best effort, as Flyte's: two URLs signed before either upload race."""
        from runplane.aws.http.transport import ServiceError

        try:
            head = self._blobs.client.head_object(Bucket=self._bucket, Key=key)
        except ServiceError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return
            raise
        if str(head.get("ETag", "")).strip('"') != content_md5.hex():
            raise already_exists(f"a different file already exists at s3://{self._bucket}/{key}")

    def upload_inputs(self, request: proxy.UploadInputsRequest) -> proxy.UploadInputsResponse:
        which = request.WhichOneof("id")
        if which == "run_id":
            project, domain = request.run_id.project, request.run_id.domain
        elif which == "project_id":
            project, domain = request.project_id.name, request.project_id.domain
        else:
            raise invalid_argument("a run_id or a project_id is required")
        project = validate_scope_name(project, field=f"{which}.project")
        domain = validate_scope_name(domain, field=f"{which}.domain")
        data = request.inputs.SerializeToString(deterministic=True)
        digest = hashlib.sha256(data).hexdigest()
        directory = f"s3://{self._bucket}/{project}/{domain}/offloaded-inputs/{digest[:32]}"
        self._blobs.put(f"{directory}/{INPUTS_FILE}", data)  # content-addressed: a retry rewrites the same bytes
        return proxy.UploadInputsResponse(offloaded_input_data=OffloadedInputData(uri=directory, inputs_hash=digest))

    def get_action_data(self, request: proxy.GetActionDataRequest) -> proxy.GetActionDataResponse:
        from flyteidl2.workflow.run_definition_pb2 import ActionSpec

        key = action_key(request.action_id)
        record = self._store.get_action(key)
        if record is None:
            raise not_found(f"action {key} not found")
        response = proxy.GetActionDataResponse(inputs_uri=record.inputs_uri)
        if record.inputs_uri:
            response.inputs.ParseFromString(self._read(record.inputs_uri) or b"")
        run_output_base = record.run_output_base  # older items keep it only in the spec
        if not run_output_base and record.action_spec:
            run_output_base = ActionSpec.FromString(record.action_spec).run_output_base
        if run_output_base:
            outputs_uri = (
                action_output_path(
                    namespace=self._namespace,
                    project=key.project,
                    domain=key.domain,
                    run=key.run,
                    action=key.name,
                    run_output_base=run_output_base,
                    attempt=record.attempts,
                )
                + f"/{OUTPUTS_FILE}"
            )
            response.outputs_uri = outputs_uri
            data = self._read(outputs_uri)
            if data is not None:
                response.outputs.CopyFrom(common_pb2.Outputs.FromString(data))
        return response

    def _read(self, uri: str) -> bytes | None:
        try:
            return self._blobs.get(uri)
        except self._blobs.client.exceptions.NoSuchKey:
            return None


def _path_segment(value: str, *, field: str) -> str:
    if not value or value in (".", "..") or "/" in value or "\\" in value or len(value) > 512:
        raise invalid_argument(f"{field} must be a single file name")
    return value
