"""The local stack's state across restarts: what ``scripts/stack`` keeps in its state folder.

Three stores make up a stack's state, each kept where its component can find it again:

- **AWS (moto)**: the table with its stream, the bucket, the trigger schedules and the task logs.
  moto's server keeps them in memory only; this module saves its backends (moto's own model
  objects, which moto makes picklable: S3 keys hand their bytes to ``__getstate__``) to
  ``aws/moto.pickle`` every ``SNAPSHOT_SECONDS`` and once more at stop, written to a temporary
  file and renamed, so a crash leaves the previous snapshot whole. On restore the stream's old
  records are dropped: the stream poller delivered them before the snapshot, and redelivering the
  whole history would make reconcile replay it (a TaskAction collected after its TTL created again).
- **the cluster**: etcd's data directory under ``kube/`` (TaskActions, the CRD, RBAC), which the
  control plane simply starts on again;
- **the issuer** (``auth/issuer.json``): its signing key, its port and its clients' secrets, so
  tokens issued before a restart (the SDK's cached ones, a console session) stay valid, and the
  per-stack page-token key, so a page token handed out before still reads the next page.

A snapshot starts with a header (format, moto's version, the payload's SHA-256): a file that is
truncated, altered or written by another moto is *unreadable*, and the stack refuses to start on it
(``StateUnreadable``, which says to start with ``--fresh``) rather than serve half of a state.
``--fresh`` (``StateFolder.wipe``) discards all three before the start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import threading
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FORMAT = b"flyte-serverless-local-state/1"
# Often enough that a stack killed without a chance to save loses little; a snapshot of a table
# of a few thousand items takes tens of milliseconds.
SNAPSHOT_SECONDS = 15.0
# A backend mutated by a request while it is pickled ("dictionary changed size") is tried again.
SNAPSHOT_ATTEMPTS = 5
FRESH_HINT = "start with --fresh to discard it and begin empty"


class StateUnreadable(RuntimeError):
    """The state folder holds a state this stack cannot read back whole."""


def _moto_services() -> list[tuple[str, Any, str]]:
    """(name, moto's BackendDict, region key) of every service whose state the stack keeps."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.logs.models import logs_backends
    from moto.s3.models import s3_backends
    from moto.scheduler.models import scheduler_backends

    from local_stack.aws import REGION

    return [
        ("dynamodb", dynamodb_backends, REGION),
        ("s3", s3_backends, "aws"),  # S3's backend is per partition
        ("scheduler", scheduler_backends, REGION),
        ("logs", logs_backends, REGION),
    ]


def _moto_version() -> bytes:
    import moto

    return str(moto.__version__).encode()


class StateFolder:
    """Where a stack's state lives, and how it is saved, checked, restored and wiped."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.aws_snapshot = root / "aws" / "moto.pickle"
        self.kube_dir = root / "kube"
        self.issuer_file = root / "auth" / "issuer.json"
        self._save_lock = threading.Lock()
        self._stop_snapshots = threading.Event()
        self._snapshot_thread: threading.Thread | None = None

    # --- --fresh --------------------------------------------------------------------------

    def wipe(self) -> None:
        """Discard the saved state (the logs and the executor's scratch folders go with it)."""
        for path in (self.aws_snapshot.parent, self.kube_dir, self.issuer_file.parent, self.root / "executor"):
            if path.exists():
                shutil.rmtree(path)

    @property
    def saved(self) -> bool:
        return self.aws_snapshot.exists()

    # --- the issuer ---------------------------------------------------------------------------

    def issuer_state(self) -> dict[str, Any] | None:
        """What the previous stack's issuer saved (None: no previous stack)."""
        if not self.issuer_file.exists():
            return None
        try:
            state = json.loads(self.issuer_file.read_text())
            if not isinstance(state, dict) or not isinstance(state.get("key"), dict):
                raise ValueError("no signing key")
            if not isinstance(state.get("secrets"), dict) or not isinstance(state.get("port"), int):
                raise ValueError("no client secrets or port")
        except (OSError, ValueError) as exc:
            raise StateUnreadable(
                f"the saved issuer state {self.issuer_file} is unreadable ({exc}); {FRESH_HINT}"
            ) from exc
        return state

    def save_issuer_state(self, state: dict[str, Any]) -> None:
        _write_atomically(self.issuer_file, json.dumps(state).encode(), mode=0o600)

    # --- AWS ----------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise StateUnreadable unless every saved part can be read back (called before anything starts)."""
        self.issuer_state()
        if self.saved:
            self._load_payload()

    def restore_aws(self) -> bool:
        """Put the saved backends in place of moto's (before the server serves); False: nothing saved."""
        if not self.saved:
            return False
        backends = pickle.loads(self._load_payload())  # our own file, checksummed before
        for name, backend_dict, region in _moto_services():
            backend = backends.get(name)
            if backend is None:
                continue
            if name == "dynamodb":
                for table in backend.tables.values():
                    if table.stream_shard is not None:
                        table.stream_shard.items.clear()  # delivered before the snapshot (see the docstring)
            backend_dict[backend.account_id][region] = backend
        logger.info("local stack state restored from %s", self.aws_snapshot)
        return True

    def save_aws(self) -> None:
        """Snapshot moto's backends (DynamoDB under its request lock, so no half-written transaction)."""
        from local_stack.aws import _DYNAMODB_LOCK, ACCOUNT

        with self._save_lock:
            for attempt in range(SNAPSHOT_ATTEMPTS):
                try:
                    with _DYNAMODB_LOCK:
                        # dict.get, not [...]: moto's backend dicts create a missing region on lookup
                        found = {
                            name: dict.get(backend_dict.get(ACCOUNT) or {}, region)
                            for name, backend_dict, region in _moto_services()
                        }
                        backends = {name: backend for name, backend in found.items() if backend is not None}
                        payload = pickle.dumps(backends, protocol=pickle.HIGHEST_PROTOCOL)
                    break
                except RuntimeError:  # another request changed a backend mid-pickle
                    if attempt == SNAPSHOT_ATTEMPTS - 1:
                        raise
            digest = hashlib.sha256(payload).hexdigest().encode()
            header = b"\n".join([FORMAT, _moto_version(), digest]) + b"\n"
            _write_atomically(self.aws_snapshot, header + payload)

    def _load_payload(self) -> bytes:
        try:
            data = self.aws_snapshot.read_bytes()
            form, version, digest, payload = data.split(b"\n", 3)
        except (OSError, ValueError) as exc:
            raise StateUnreadable(f"the saved AWS state {self.aws_snapshot} is unreadable; {FRESH_HINT}") from exc
        if form != FORMAT:
            raise StateUnreadable(f"{self.aws_snapshot} is not a saved local stack state; {FRESH_HINT}")
        if version != _moto_version():
            raise StateUnreadable(
                f"{self.aws_snapshot} was saved by moto {version.decode(errors='replace')}, "
                f"this is moto {_moto_version().decode()}; {FRESH_HINT}"
            )
        if hashlib.sha256(payload).hexdigest().encode() != digest:
            raise StateUnreadable(f"the saved AWS state {self.aws_snapshot} is damaged (checksum); {FRESH_HINT}")
        return payload

    def start_snapshots(self, *, interval: float = SNAPSHOT_SECONDS) -> None:
        """Save every ``interval`` seconds until ``stop_snapshots``."""
        self._stop_snapshots.clear()

        def loop() -> None:
            while not self._stop_snapshots.wait(interval):
                try:
                    self.save_aws()
                except Exception:
                    logger.exception("saving the local stack's state failed")

        self._snapshot_thread = threading.Thread(target=loop, name="state-snapshots", daemon=True)
        self._snapshot_thread.start()

    def stop_snapshots(self, *, final: bool) -> None:
        """Stop saving; ``final``: one last snapshot now (the stack's writers have stopped)."""
        self._stop_snapshots.set()
        if self._snapshot_thread is not None:
            self._snapshot_thread.join(timeout=5)
            self._snapshot_thread = None
        if final:
            self.save_aws()
            logger.info("local stack state saved to %s", self.root)


def _write_atomically(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
