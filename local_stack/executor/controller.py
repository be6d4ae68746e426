"""The local executor: watches one namespace's TaskActions, starts a runner per resource and
collects terminated ones after their TTL (Flyte's controller manager and GarbageCollector)."""

from __future__ import annotations

import logging
import os
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local_stack.executor.cache import CacheClient
from local_stack.executor.conditions import ConditionRunner
from local_stack.executor.events import EventSink
from local_stack.executor.process import ABORT_GRACE_SECONDS, Launcher
from local_stack.executor.runner import LOG_FILE, _ActionRunner, _Context
from local_stack.executor.status import TERMINATED, is_terminal, should_collect
from local_stack.executor.taskactions import API_TIMEOUT_SECONDS, TaskActions
from local_stack.task_logs import LogSink
from runplane.flyte.identifiers import ActionKey, taskaction_name
from runplane.kube.resources import GROUP, LABEL_COMPLETED_TIME, LABEL_TERMINATION_STATUS, PLURAL, VERSION

logger = logging.getLogger(__name__)

CONDITION_ACTION = "condition"  # HITL conditions have no process; Flyte resolves them by signal or timeout
# The server ends each watch after this long; the loop resumes from the last resourceVersion.
WATCH_TIMEOUT_SECONDS = 10
# After a failed list or watch, wait before relisting, so a restarting API server is not hammered.
WATCH_RETRY_SECONDS = 1.0


class LocalExecutor:
    """Watches the TaskActions of one namespace and runs them; see the module docstring."""

    def __init__(
        self,
        *,
        kubeconfig: str | os.PathLike[str],
        namespace: str,
        events_endpoint: str,
        work_dir: str | os.PathLike[str],
        task_environment: dict[str, str] | None = None,
        ttl_seconds: float = 3600.0,
        gc_interval_seconds: float = 60.0,
        python_bin_dir: str | os.PathLike[str] | None = None,
        log_group: str | None = None,
        cache_endpoint: str = "",
    ) -> None:
        """``log_group``: the CloudWatch Logs group the processes' output is shipped to (none: kept
        in the work folder only). ``cache_endpoint``: where the CacheService is, called without
        credentials as Flyte's executor does (``http.DefaultClient``: the relay adds them); none: no
        task cache."""
        self.kubeconfig = Path(kubeconfig)
        self.namespace = namespace
        self.events_endpoint = events_endpoint
        self.log_group = log_group
        self.cache_endpoint = cache_endpoint
        self.work_dir = Path(work_dir)
        self.task_environment = dict(task_environment or {})
        self.ttl_seconds = ttl_seconds
        self.gc_interval_seconds = gc_interval_seconds
        self.python_bin_dir = Path(python_bin_dir) if python_bin_dir else Path(sys.executable).parent
        self._stopping = threading.Event()
        self._runners: dict[str, _ActionRunner] = {}  # by uid; finished ones stay until the resource goes
        self._runners_lock = threading.Lock()
        self._skipped: set[str] = set()  # condition actions, logged once
        self._conditions: dict[str, ConditionRunner] = {}  # by uid; watch thread only
        self._threads: list[threading.Thread] = []
        self._api_client: Any = None
        self._context: _Context | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> LocalExecutor:
        import boto3
        from kubernetes import config

        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._api_client = config.new_client_from_config(config_file=str(self.kubeconfig))
        self._context = _Context(
            actions=TaskActions(self._api_client, self.namespace),
            events=EventSink(self.events_endpoint),  # no credentials, as Flyte's (the relay adds them)
            s3=boto3.client("s3"),
            work_dir=self.work_dir,
            bin_dir=self.python_bin_dir,
            task_environment=self.task_environment,
            stopping=self._stopping,
            logs=LogSink(log_group=self.log_group, client=boto3.client("logs")) if self.log_group else None,
            # no credentials, as Flyte's cache client (the relay adds them)
            cache=CacheClient(self.cache_endpoint) if self.cache_endpoint else None,
            launcher=self._launcher(),
        )
        for name, target in (("executor-watch", self._watch_forever), ("executor-gc", self._collect_forever)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info("local executor watching TaskActions in %s (work dir %s)", self.namespace, self.work_dir)
        return self

    def _launcher(self) -> Launcher:
        """Its fork server imports the SDK under what a task gets (task_environment_of, with
        placeholders for the task's own names and no template env): a task is only forked if it
        agrees with it in everything the import read."""
        from flyteidl2.core import tasks_pb2

        from local_stack.executor.environment import task_environment_of

        placeholders = dict.fromkeys(("runName", "project", "domain", "actionName", "runOutputBase"), "")
        environment = task_environment_of(
            spec=placeholders,
            template=tasks_pb2.TaskTemplate(),
            attempt=1,
            pod_name="",
            platform=self.task_environment,
            bin_dir=self.python_bin_dir,
        )
        interpreter = self.python_bin_dir / "python"
        return Launcher.for_executor(
            interpreter=str(interpreter if interpreter.exists() else sys.executable),
            environment=environment,
            work_dir=self.work_dir,
        )

    def running_processes(self, run: str) -> list[int]:
        """The pids of the task processes still alive for a run's actions."""
        with self._runners_lock:
            runners = list(self._runners.values())
        return [
            runner.process.pid
            for runner in runners
            if runner.process is not None
            and runner.process.poll() is None
            and runner._labels.get("flyte.org/run") == run
        ]

    def stop(self) -> None:
        """Kill running task processes and stop watching; resources keep their status (a restarted
        executor runs an unfinished attempt again)."""
        self._stopping.set()
        with self._runners_lock:
            runners = list(self._runners.values())
        for runner in runners:
            runner.thread.join(timeout=ABORT_GRACE_SECONDS + 2)
        for thread in self._threads:
            thread.join(timeout=1)  # the watch notices within WATCH_TIMEOUT_SECONDS; it is a daemon
        self._threads.clear()
        if self._context is not None:
            self._context.events.close()
            self._context.launcher.stop()

    def __enter__(self) -> LocalExecutor:
        return self.start()

    @property
    def _started(self) -> _Context:
        assert self._context is not None, "the executor is not started"
        return self._context

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def log_file(self, *, project: str, domain: str, run: str, action: str, attempt: int) -> Path:
        """Where the stdout and stderr of an attempt are captured."""
        return (
            self.work_dir
            / taskaction_name(ActionKey(project=project, domain=domain, run=run, name=action))
            / str(attempt)
            / LOG_FILE
        )

    # --- garbage collection -----------------------------------------------------------------

    def collect_garbage(self) -> int:
        """Delete terminated TaskActions older than the TTL (Flyte's GarbageCollector.collect)."""
        actions = self._started.actions
        now = datetime.now(UTC)
        deleted, token = 0, None
        while True:
            page = actions.list_page(
                label_selector=f"{LABEL_TERMINATION_STATUS}={TERMINATED},{LABEL_COMPLETED_TIME}", token=token
            )
            for item in page.get("items") or []:
                metadata = item["metadata"]
                completed = (metadata.get("labels") or {}).get(LABEL_COMPLETED_TIME, "")
                if should_collect(completed, ttl_seconds=self.ttl_seconds, now=now) and not metadata.get(
                    "deletionTimestamp"
                ):
                    deleted += actions.delete(metadata["name"], metadata["uid"])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
        if deleted:
            logger.info("garbage collector deleted %d terminated TaskActions", deleted)
        return deleted

    def _collect_forever(self) -> None:
        while not self._stopping.is_set():  # a first sweep at once, as Flyte's does on start
            try:
                self.collect_garbage()
            except Exception:
                logger.exception("TaskAction garbage collection failed")
            self._stopping.wait(self.gc_interval_seconds)

    # --- watching ---------------------------------------------------------------------------

    def _watch_forever(self) -> None:
        from kubernetes.client.exceptions import ApiException

        resource_version: str | None = None
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    resource_version = self._relist()
                resource_version = self._watch(resource_version)
            except ApiException as exc:
                resource_version = None  # 410 Gone, or anything else: relist, nothing is missed
                if exc.status != 410:
                    logger.warning("watching TaskActions failed: %s %s; relisting", exc.status, exc.reason)
                    self._stopping.wait(WATCH_RETRY_SECONDS)
            except Exception:
                resource_version = None
                logger.exception("watching TaskActions failed; relisting")
                self._stopping.wait(WATCH_RETRY_SECONDS)

    def _relist(self) -> str:
        actions = self._started.actions
        seen: set[str] = set()
        token = None
        while True:
            page = actions.list_page(token=token)
            for item in page.get("items") or []:
                seen.add(item["metadata"]["uid"])
                self._dispatch("ADDED", item)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
        with self._runners_lock:
            vanished = [uid for uid in self._runners if uid not in seen]
        for uid in vanished:  # deleted while nobody watched
            self._dispatch("DELETED", {"metadata": {"uid": uid}})
        return str((page.get("metadata") or {}).get("resourceVersion", ""))

    def _watch(self, resource_version: str) -> str:
        from kubernetes.watch import Watch

        watch = Watch()
        try:
            for event in watch.stream(
                self._started.actions.api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_TIMEOUT_SECONDS,
                _request_timeout=(API_TIMEOUT_SECONDS, WATCH_TIMEOUT_SECONDS + API_TIMEOUT_SECONDS),
            ):
                resource = event["raw_object"]
                resource_version = str(resource.get("metadata", {}).get("resourceVersion") or resource_version)
                if event["type"] != "BOOKMARK":
                    self._dispatch(event["type"], resource)
                if self._stopping.is_set():
                    break
        finally:
            watch.stop()
        return resource_version

    def _drive_condition(self, resource: dict[str, Any]) -> None:
        uid = resource["metadata"]["uid"]
        runner = self._conditions.get(uid)
        if (runner is None or not runner.thread.is_alive()) and not self._stopping.is_set():
            if runner is not None and is_terminal(resource.get("status") or {}):
                return  # ended: nothing more to drive
            runner = self._conditions[uid] = ConditionRunner(self._started.actions, resource, stopping=self._stopping)
            runner.thread.start()

    def _dispatch(self, kind: str, resource: dict[str, Any]) -> None:
        """Called from the watch thread only."""
        metadata = resource.get("metadata") or {}
        uid = metadata.get("uid")
        if not uid:
            return
        if kind == "DELETED":
            with self._runners_lock:
                runner = self._runners.pop(uid, None)
            self._skipped.discard(uid)
            condition = self._conditions.pop(uid, None)
            if condition is not None:
                condition.deleted.set()
            if runner is not None:
                runner.request_deletion()  # a running one kills its process and records the abort
            return
        if (resource.get("spec") or {}).get("actionType") == CONDITION_ACTION:
            self._drive_condition(resource)  # no process: Paused, then Signaled or TimedOut
            return
        with self._runners_lock:
            runner = self._runners.get(uid)
            if runner is None:
                if self._stopping.is_set():
                    return
                runner = self._runners[uid] = _ActionRunner(self._started, resource)
                if metadata.get("deletionTimestamp"):
                    runner.request_deletion()
                runner.thread.start()
                return
        if metadata.get("deletionTimestamp") and not runner.request_deletion():
            runner.finalize_deletion_in_background()  # its event may wait: never on the watch thread
