"""How an attempt ended: the error document the SDK wrote, or the exit of its process, read as
Flyte's plugin reads a pod's outcome."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from flyteidl2.core import execution_pb2

from local_stack.executor.status import _ORIGIN_KINDS, Failure

# Kubernetes' reason for a container that exited non-zero, which Flyte reports as the error code.
EXIT_FAILURE_CODE = "Error"
# A SIGKILLed primary container is a system error for Flyte (node shutdown, preemption).
KILLED_CODE = "Interrupted"
# What Kubernetes keeps of a failed container's log as its message (FallbackToLogsOnError), which
# Flyte puts in the error: the last 80 lines, at most 2 KiB.
LOG_TAIL_LINES = 80
LOG_TAIL_BYTES = 2048


def read_object(s3: Any, uri: str) -> bytes | None:
    """The object at an ``s3://`` (or ``file://``) URI; None if there is none."""
    scheme, _, rest = uri.partition("://")
    if scheme == "file":
        path = Path("/" + rest.lstrip("/"))
        return path.read_bytes() if path.exists() else None
    if scheme != "s3":
        raise ValueError(f"unsupported storage scheme in {uri!r}")
    from botocore.exceptions import ClientError

    bucket, _, key = rest.partition("/")
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise


def failure_from_error_document(document: execution_pb2.ErrorDocument, uri: str) -> Failure:
    """Flyte's RemoteFileOutputReader.ReadError."""
    if not document.HasField("error"):
        return Failure("ErrorFileBadFormat", f"error not formatted correctly, nil error @path [{uri}]", kind="SYSTEM")
    error = document.error
    return Failure(
        code=error.code,
        message=error.message,
        kind=_ORIGIN_KINDS.get(error.origin, ""),
        recoverable=error.kind == execution_pb2.ContainerError.RECOVERABLE,
    )


def exit_failure(returncode: int, *, container: str, log_file: Path) -> Failure:
    """A process that failed without an error document: how Flyte reads a failed primary container."""
    if returncode == -signal.SIGKILL:
        return Failure(KILLED_CODE, f"[{container}] was killed (SIGKILL)", kind="SYSTEM")
    exit_code = 128 - returncode if returncode < 0 else returncode  # a signal n shows as 128 + n in a container
    return Failure(
        EXIT_FAILURE_CODE,
        f"\r\n[{container}] terminated with exit code ({exit_code}). Reason [{EXIT_FAILURE_CODE}]. Message: \n{log_tail(log_file)}.",
    )


def log_tail(path: Path) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - LOG_TAIL_BYTES))
            data = log.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-LOG_TAIL_LINES:])
