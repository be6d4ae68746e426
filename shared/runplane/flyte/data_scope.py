"""Which data a request may point at: the data bucket's prefix of the request's own project and domain.

The control plane follows stored pointers with its own rights (GetActionData reads an action's
``inputs_uri`` and outputs with the data proxy's bucket-wide role, the executor hands them to the
pod), so a pointer a request names is checked before it is stored: it must be an ``s3://`` URI
under ``<root>/<project>/<domain>/``, where a root is the data bucket (uploads and offloaded inputs,
``functions/data_proxy``) or the stack's storage prefix (run directories, ``functions/create_run``),
optionally behind one of Flyte's shard prefixes (``runplane.flyte.output_paths``: outputs live at
``s3://<bucket>/<shard>/<run base path>/...``). Anything else, another project's prefix, another
bucket, a ``..`` segment, is refused with ``invalid_argument`` naming the field. Pure logic.
"""

from __future__ import annotations

from dataclasses import dataclass

from flyteidl2.core.execution_pb2 import LogContext

from runplane.errors import InvalidArgument
from runplane.flyte.output_paths import SHARD_PREFIXES

_SHARDS = frozenset(SHARD_PREFIXES)
# A URI is a key in one bucket; a longer one is no S3 key (1,024 bytes) plus its bucket.
MAX_URI_LENGTH = 1100


@dataclass(frozen=True, slots=True)
class DataScope:
    """The roots a stack's data lives under: ``s3://<bucket>[/<path>]`` each, without a trailing slash."""

    roots: tuple[str, ...]

    @classmethod
    def of(cls, *, data_bucket: str, storage_prefix: str = "") -> DataScope:
        roots = [f"s3://{data_bucket}"]
        if storage_prefix and storage_prefix.rstrip("/") not in roots:
            roots.append(storage_prefix.rstrip("/"))
        return cls(roots=tuple(roots))

    def check(self, uri: str, *, project: str, domain: str, field: str) -> str:
        """``uri`` if it lies under this project and domain's prefix of a root; refused otherwise."""
        bucket, path = _split(uri, field=field)
        segments = path.split("/")
        if any(segment in (".", "..") for segment in segments) or "\\" in path:
            raise InvalidArgument(f"{field} {uri!r} must not contain '.' or '..' segments")
        for root in self.roots:
            root_bucket, root_path = _split(root, field="root")
            if bucket != root_bucket:
                continue
            prefix = [*(root_path.split("/") if root_path else []), project, domain]
            # with or without Flyte's output shard in front of the root's path
            if _under(segments, prefix) or (segments[0] in _SHARDS and _under(segments[1:], prefix)):
                return uri
        raise InvalidArgument(
            f"{field} {uri!r} is outside the data of {project}/{domain}: it must be under "
            + " or ".join(f"{root}/{project}/{domain}/" for root in self.roots)
        )

    def check_optional(self, uri: str, *, project: str, domain: str, field: str) -> str:
        return self.check(uri, project=project, domain=domain, field=field) if uri else uri


def _split(uri: str, *, field: str) -> tuple[str, str]:
    if len(uri) > MAX_URI_LENGTH:
        raise InvalidArgument(f"{field} is longer than {MAX_URI_LENGTH} characters")
    if not uri.startswith("s3://"):
        raise InvalidArgument(f"{field} {uri!r} must be an s3:// URI")
    bucket, _, path = uri[len("s3://") :].partition("/")
    return bucket, path.rstrip("/")


def _under(segments: list[str], prefix: list[str]) -> bool:
    return len(segments) >= len(prefix) and segments[: len(prefix)] == prefix


def check_log_context(log_context: LogContext, *, namespace: str, taskaction: str, field: str) -> None:
    """A recorded ``core.LogContext`` (TailLogs reads the pod it names from the cluster-wide log
    group) must name only pods of this action: in the TaskAction namespace, named
    ``<TaskAction name>-<attempt>`` as Flyte's pod plugin names them (``-<n>`` parts after it for
    array and retried sub-pods). The primary pod must be one of them."""
    names = set()
    for i, pod in enumerate(log_context.pods):
        if pod.namespace != namespace:
            raise InvalidArgument(f"{field}.pods[{i}].namespace must be {namespace!r}, the TaskAction namespace")
        if not _is_pod_of(pod.pod_name, taskaction):
            raise InvalidArgument(f"{field}.pods[{i}].pod_name {pod.pod_name!r} is not a pod of {taskaction}")
        names.add(pod.pod_name)
    if log_context.primary_pod_name and log_context.primary_pod_name not in names:
        raise InvalidArgument(f"{field}.primary_pod_name must be one of its pods")
    for prefix in [log_context.pod_name_prefix, *log_context.pod_name_prefixes]:
        if prefix and not (prefix == taskaction or prefix.startswith(f"{taskaction}-")):
            raise InvalidArgument(f"{field} pod name prefix {prefix!r} is not of {taskaction}")


def _is_pod_of(pod_name: str, taskaction: str) -> bool:
    if not pod_name.startswith(f"{taskaction}-"):
        return False
    parts = pod_name[len(taskaction) + 1 :].split("-")
    return all(part.isdigit() and part.isascii() for part in parts)
