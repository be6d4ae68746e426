"""The whole local stack, started and stopped as one: what ``python -m local_stack`` runs.

Order of start: moto (table, stream, bucket, schedule group) -> the Kubernetes control plane
(RBAC; deploy/kubernetes: CRD, namespace, the control plane's Role; garbage collector) -> the
handlers' environment (reconcile and the status mirror act as the control plane's identity, under
that Role; a page-token key drawn for this stack) -> Lambda's Invoke API (for
invocations of one function by another) -> the API Gateway front -> the stream poller -> the
scheduler that fires the triggers' schedules -> the data plane: the status mirror's minute ticks
and the local executor, which runs the TaskActions' tasks as processes.

The data plane can be switched off (``--no-executor``, or ``data_plane=False``) for tests that
play the executor and the informer themselves, and switched on again with ``data_plane()``.

Authentication (``local_stack.auth``): a local identity provider and TLS for the front start with
every stack; the front enforces the template's JWT authorizers when ``auth=True`` (what
``scripts/stack`` runs) or within ``authentication()``. The data plane started while enforcement
is on gives task processes client credentials (a flyte config file, https to the front). The
executor sends its events and its task-cache calls without credentials to the events relay (local_stack.relay, the script
deploy/kubernetes/events-relay runs in the cluster), which forwards them to the front with a token
of the local issuer's data-plane client, as it does in the cluster.
Everything binds to loopback. A lock file in the state directory makes a second start fail
clearly instead of sharing (and corrupting) the first one's state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from local_stack import single_instance
from local_stack.apigateway import ApiGatewayFront
from local_stack.auth import DATA_PLANE_CLIENT, USER_CLIENT, LocalAuth
from local_stack.aws import (
    CREATE_RUN_ARN,
    REGION,
    SCHEDULE_GROUP,
    SCHEDULER_DEAD_LETTER_ARN,
    SCHEDULER_ROLE_ARN,
    TASK_LOG_GROUP,
    AwsResources,
    MotoServer,
    aws_environment,
    provision,
)
from local_stack.kube import KubeControlPlane, KubeEndpoints
from local_stack.lambda_runtime import load_handler
from local_stack.lambda_service import LocalLambdaService
from local_stack.private import private_directory
from local_stack.relay import LocalRelay
from local_stack.scheduler import LocalScheduler
from local_stack.single_instance import StackAlreadyRunning as StackAlreadyRunning  # its public name here too
from local_stack.state import StateFolder, StateUnreadable
from local_stack.stream_poller import StreamPoller
from local_stack.template import (
    async_retries,
    function_handler,
    function_timeout,
    functions,
    http_routes,
    scheduled_invocations,
    stream_routes,
    stream_settings,
)

if TYPE_CHECKING:
    from local_stack.executor import LocalExecutor  # imported when the data plane starts

logger = logging.getLogger(__name__)

TABLE_NAME = "flyte-actions"
BUCKET_NAME = "flyte-data"
NAMESPACE = "flyte"
MIRROR_FUNCTION = "MirrorStatusFunction"  # its local name: the template's logical id
# A thread's current step (a poll, a handler call) ends within this; Ctrl-C stops the stack in 5 s.
STOP_JOIN_SECONDS = 3.0
# The stack waits this long for each asynchronous invocation still running when it stops.
INVOCATION_JOIN_SECONDS = 0.2


def _concurrently(steps: list[Callable[[], None]]) -> None:
    """Run independent shutdown steps side by side (each mostly waits), all of them even if one fails."""
    threads = [threading.Thread(target=step, name="stopping", daemon=True) for step in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=STOP_JOIN_SECONDS * 2)


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path
    api_port: int = 8080
    moto_port: int = 0
    apiserver_port: int = 0
    # Lambda's ESM retries per the template; locally fewer, faster retries keep failures visible.
    stream_max_retries: int | None = None
    stream_retry_backoff_seconds: float = 0.2
    watch_window_seconds: float = 20.0
    # When the local front cuts a streamed watch off (the streaming function's timeout: 900 s on
    # AWS, where each stream ends cleanly after WATCH_WINDOW_SECONDS first).
    stream_timeout_seconds: float = 900.0
    # The data plane: the local executor and the status mirror's scheduled ticks.
    data_plane: bool = True
    # How often the scheduled functions (the status mirror) are invoked; None: as the template says.
    tick_seconds: float | None = None
    # The mirror's watch budget per invocation (Lambda's timeout, locally shorter so hand-offs
    # between invocations happen in minutes, not a quarter of an hour), and its idle grace.
    mirror_timeout_seconds: float = 120.0
    mirror_idle_grace_seconds: float = 10.0
    executor_ttl_seconds: float = 3600.0  # Flyte's default: terminal TaskActions live an hour
    # The front enforces the routes' JWT authorizers from the start (scripts/stack does; tests turn
    # it on for a block with ``authentication()``). The local issuer runs either way.
    auth: bool = False
    issuer_port: int = 0  # the local identity provider's port (0: any free one)
    # Keep the state (table, bucket, etcd, the issuer's keys) in state_dir across restarts
    # (local_stack.state); scripts/stack does, tests start empty.
    keep_state: bool = False


class LocalStack:
    def __init__(
        self,
        config: StackConfig,
        *,
        moto: MotoServer | None = None,
        kube: KubeControlPlane | None = None,
    ) -> None:
        """``moto``/``kube`` may be already-running components shared with other users (tests);
        the stack then neither starts nor stops them."""
        self.config = config
        self._lock_file: TextIO | None = None
        self._owns_moto = moto is None
        self._owns_kube = kube is None
        self._moto = moto or MotoServer(port=config.moto_port)
        self._kube = kube or KubeControlPlane(
            state_dir=config.state_dir / "kube", apiserver_port=config.apiserver_port, namespaces=(NAMESPACE,)
        )
        self._front: ApiGatewayFront | None = None
        self.auth: LocalAuth | None = None
        self._stop_polling = threading.Event()
        self._poll_thread: threading.Thread | None = None
        self._scheduler_thread: threading.Thread | None = None
        self._ticker_thread: threading.Thread | None = None
        self._stop_ticking = threading.Event()
        self.scheduler: LocalScheduler | None = None
        self.lambdas: LocalLambdaService | None = None
        self.executor: LocalExecutor | None = None
        self.relay: LocalRelay | None = None
        self.aws: AwsResources | None = None
        self.kube: KubeEndpoints | None = None
        self.poller: StreamPoller | None = None
        self.environment: dict[str, str] = {}
        self.state: StateFolder | None = StateFolder(config.state_dir) if config.keep_state else None
        self._saving = False

    @property
    def endpoint(self) -> str:
        assert self._front is not None, "the stack is not started"
        return self._front.endpoint

    def start(self) -> LocalStack:
        self._acquire_lock()
        if self.state is not None:
            try:
                self.state.check()  # before anything starts: never serve half of a saved state
            except StateUnreadable:
                self._release_lock()
                raise
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if self._owns_moto:
            if self.state is not None:
                self.state.restore_aws()
            self._moto.start()
        self.aws = provision(endpoint=self._moto.endpoint, table_name=TABLE_NAME, bucket=BUCKET_NAME)
        if self._owns_kube:
            if self.state is None and self._kube.state_dir.exists():  # not kept: a previous run's etcd is stale
                shutil.rmtree(self._kube.state_dir)
            self._kube.start()
        self.kube = self._kube.endpoints

        self.lambdas = LocalLambdaService(
            functions={
                name: (resource["Properties"]["Handler"], self._timeout_of(name))
                for name, resource in functions().items()
            }
        ).start()

        saved = self.state.issuer_state() if self.state is not None else None
        self.auth = LocalAuth(
            state_dir=self.config.state_dir / "auth", issuer_port=self.config.issuer_port, saved=saved
        ).start()
        # Per stack, as the template generates one per deployment: never a public default (kept
        # with the state, so page tokens handed out before a restart still read on).
        page_token_secret = (saved or {}).get("page_token_secret") or secrets.token_urlsafe(32)
        if self.state is not None:
            self.state.save_issuer_state({**self.auth.saved_state(), "page_token_secret": page_token_secret})

        # The handlers run in this process, configured as template.yaml configures them on AWS.
        self.environment = {
            **self.auth.function_environment(),
            **aws_environment(self.aws.endpoint),
            "ACTIONS_TABLE": self.aws.table_name,
            "DATA_BUCKET": self.aws.bucket,
            # reconcile and the status mirror act as the control plane's identity, under the Role
            # deploy/kubernetes installs (the executor and the tests keep the admin kubeconfig).
            "KUBECONFIG": str(self.kube.control_plane_kubeconfig),
            "PAGE_TOKEN_SECRET": page_token_secret,
            "TASKACTION_NAMESPACE": NAMESPACE,
            "TASK_LOG_GROUP": TASK_LOG_GROUP,  # where the executor ships the processes' output
            "WATCH_WINDOW_SECONDS": str(self.config.watch_window_seconds),
            "CREATE_RUN_FUNCTION_ARN": CREATE_RUN_ARN,
            "SCHEDULER_ROLE_ARN": SCHEDULER_ROLE_ARN,
            "SCHEDULER_DEAD_LETTER_ARN": SCHEDULER_DEAD_LETTER_ARN,
            "SCHEDULE_GROUP": SCHEDULE_GROUP,
            "AWS_ENDPOINT_URL_LAMBDA": self.lambdas.endpoint,
            "MIRROR_FUNCTION_NAME": MIRROR_FUNCTION,
            "MIRROR_SHARDS": "1",
            "MIRROR_IDLE_GRACE_SECONDS": str(self.config.mirror_idle_grace_seconds),
            "MIRROR_STOP_MARGIN_SECONDS": "5",
            "POWERTOOLS_SERVICE_NAME": "flyte-serverless-local",
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
            # The metrics' EMF lines would go to the terminal: off unless asked for (on AWS they
            # go to the log group, where CloudWatch extracts them).
            "POWERTOOLS_METRICS_NAMESPACE": "FlyteServerless/local",
            "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
        }
        os.environ.update(self.environment)

        self._front = ApiGatewayFront(
            routes=http_routes(),
            port=self.config.api_port,
            authorizers=self.auth.authorizers(),
            tls=self.auth.tls_context(),
            streams=stream_routes(),
            stream_timeout_seconds=self.config.stream_timeout_seconds,
        )
        # the console signs people in at the issuer, which sends them back to the front's origins
        self.auth.register_console(origins=[self._front.endpoint, self.tls_endpoint])
        self._front.start()
        self._front.authorizing = self.config.auth
        self.relay = LocalRelay(
            upstream=self.endpoint,
            token_url=self.auth.issuer.token_endpoint,
            client_id=DATA_PLANE_CLIENT,
            secret_file=self.auth.secret_file(DATA_PLANE_CLIENT),
        ).start()

        import boto3

        settings = stream_settings()
        self.poller = StreamPoller(
            streams_client=boto3.client("dynamodbstreams", endpoint_url=self.aws.endpoint, region_name=REGION),
            stream_arn=self.aws.stream_arn,
            handler=load_handler(function_handler("ReconcileFunction")),
            batch_size=int(settings.get("BatchSize", 100)),
            max_retries=self.config.stream_max_retries
            if self.config.stream_max_retries is not None
            else int(settings.get("MaximumRetryAttempts", 2)),
            retry_backoff_seconds=self.config.stream_retry_backoff_seconds,
            region=REGION,
            filter_patterns=[f["Pattern"] for f in settings.get("FilterCriteria", {}).get("Filters", [])],
        )
        self._poll_thread = threading.Thread(
            target=self.poller.run, args=(self._stop_polling,), name="stream-poller", daemon=True
        )
        self._poll_thread.start()

        self.scheduler = LocalScheduler(
            client=boto3.client("scheduler", endpoint_url=self.aws.endpoint, region_name=REGION),
            group=SCHEDULE_GROUP,
            target=load_handler(function_handler("CreateRunFunction")),
            max_retries=async_retries("CreateRunFunction"),  # then its on-failure list, as on AWS
        )
        self._scheduler_thread = threading.Thread(
            target=self.scheduler.run, args=(self._stop_polling,), name="scheduler", daemon=True
        )
        self._scheduler_thread.start()
        if self.config.data_plane:
            self.start_data_plane()
        else:
            self.lambdas.disable(MIRROR_FUNCTION)
        if self.state is not None and self._owns_moto:
            self.state.start_snapshots()
            self._saving = True  # from here on a stop saves: the restored state is whole

    # --- the data plane ---------------------------------------------------------------------

    def start_data_plane(self) -> None:
        """The executor runs TaskActions; the status mirror is ticked and may be woken."""
        from local_stack.executor import LocalExecutor

        if self.executor is not None:
            return
        assert self.lambdas is not None and self.kube is not None, "the stack is not started"
        assert self.auth is not None, "the stack is not started"
        self.lambdas.enable(MIRROR_FUNCTION)
        self.executor = LocalExecutor(
            kubeconfig=str(self.kube.kubeconfig),
            namespace=self.namespace,
            events_endpoint=self.events_endpoint,
            task_environment=self.task_environment(),
            work_dir=self.config.state_dir / "executor",
            ttl_seconds=self.config.executor_ttl_seconds,
            python_bin_dir=str(Path(sys.executable).parent),
            log_group=TASK_LOG_GROUP,
            # the task cache: through the relay too, without credentials, as Flyte's (docs/caching.md)
            cache_endpoint=self.events_endpoint,
        )
        self.executor.start()
        self._stop_ticking.clear()
        self._ticker_thread = threading.Thread(target=self._tick, name="ticker", daemon=True)
        self._ticker_thread.start()

    def stop_data_plane(self) -> None:
        self._stop_ticking.set()
        if self._ticker_thread is not None:
            self._ticker_thread.join(timeout=10)
            self._ticker_thread = None
        if self.lambdas is not None:
            self.lambdas.disable(MIRROR_FUNCTION)  # as a reserved concurrency of 0 does
        if self.executor is not None:
            self.executor.stop()
            self.executor = None

    @contextlib.contextmanager
    def data_plane(self) -> Iterator[LocalStack]:
        """The data plane on for a block (tests that otherwise play it themselves)."""
        self.start_data_plane()
        try:
            yield self
        finally:
            self.stop_data_plane()

    def task_environment(self) -> dict[str, str]:
        """What a task pod of this stack gets beyond Flyte's own variables: the API endpoint
        (the SDK inside a task enqueues its children there) and the local bucket. While the front
        enforces authentication, a flyte config file (``FLYTECTL_CONFIG``: https to the front
        trusting the local CA), which the SDK's ``init_in_cluster`` prefers to everything else,
        whose credential is the run token reconcile put in the pod's env (docs/security.md)."""
        assert self.aws is not None and self.auth is not None, "the stack is not started"
        storage = {**aws_environment(self.aws.endpoint), "AWS_ALLOW_HTTP": "true"}
        if not self.authenticating:
            return {"_U_EP_OVERRIDE": self.endpoint, "_U_INSECURE": "true", "_U_USE_ACTIONS": "1", **storage}
        config = self.auth.task_flyte_config(endpoint=self.tls_endpoint)  # the run's token, no client secret
        return {"_U_EP_OVERRIDE": self.tls_endpoint, "FLYTECTL_CONFIG": str(config), "_U_USE_ACTIONS": "1", **storage}

    # --- authentication ---------------------------------------------------------------------

    @property
    def tls_endpoint(self) -> str:
        """The front over HTTPS (same port), trusted through ``ca_cert``."""
        assert self._front is not None and self._front.tls_endpoint, "the stack is not started"
        return self._front.tls_endpoint

    @property
    def ca_cert(self) -> Path:
        assert self.auth is not None, "the stack is not started"
        return self.auth.ca_cert

    @property
    def authenticating(self) -> bool:
        """Whether the front enforces the routes' authorizers right now."""
        return self._front is not None and self._front.authorizing

    @contextlib.contextmanager
    def stream_limit(self, seconds: float) -> Iterator[LocalStack]:
        """The front cuts streamed watches off after ``seconds`` (the function's timeout) for a block."""
        assert self._front is not None, "the stack is not started"
        previous = self._front.stream_timeout_seconds
        self._front.stream_timeout_seconds = seconds
        try:
            yield self
        finally:
            self._front.stream_timeout_seconds = previous

    @contextlib.contextmanager
    def authentication(self, enforced: bool = True) -> Iterator[LocalStack]:
        """The front enforces (or, ``enforced=False``, stops enforcing) the authorizers for a block."""
        assert self._front is not None, "the stack is not started"
        previous = self._front.authorizing
        self._front.authorizing = enforced
        try:
            yield self
        finally:
            self._front.authorizing = previous

    @property
    def events_endpoint(self) -> str:
        """Where the executor sends its events and cache calls: the relay (no credentials, as in the cluster)."""
        assert self.relay is not None, "the stack is not started"
        return self.relay.endpoint

    def data_plane_authorization(self) -> str:
        """An Authorization header value for the data-plane routes (what Flyte's executor sends)."""
        assert self.auth is not None, "the stack is not started"
        return f"Bearer {self.auth.data_plane_token()}"

    def data_plane_headers(self) -> dict[str, str]:
        return {"Authorization": self.data_plane_authorization()}

    def user_headers(self) -> dict[str, str]:
        """An Authorization header for the user routes: a token of the user client (people, CLI)."""
        assert self.auth is not None, "the stack is not started"
        return {"Authorization": f"Bearer {self.auth.client_token(USER_CLIENT)}"}

    def _tick(self) -> None:
        """EventBridge Scheduler's ticks of the functions' schedules (the status mirror)."""
        schedules = scheduled_invocations()
        assert self.lambdas is not None  # ticking starts with the data plane, once the stack runs
        while True:
            for schedule in schedules:
                self.lambdas.invoke_async(schedule.function, schedule.input)
            if self._stop_ticking.wait(self.config.tick_seconds or 60.0):
                return

    @property
    def namespace(self) -> str:
        return NAMESPACE

    def _timeout_of(self, name: str) -> float:
        return self.config.mirror_timeout_seconds if name == MIRROR_FUNCTION else function_timeout(name)

    def stop(self) -> None:
        # The data plane first (its last events still reach the front), then the front (no more
        # writes), then the stream poller, which delivers what is left when the state is kept:
        # the saved stream starts empty (local_stack.state).
        self.stop_data_plane()
        if self.relay is not None:  # the events relay forwards the executor's last events to the front
            self.relay.stop()
            self.relay = None
        if self._front is not None:
            self._front.stop()
            self._front = None
        self._stop_polling.set()
        for thread in (self._poll_thread, self._scheduler_thread):
            if thread is not None:
                thread.join(timeout=STOP_JOIN_SECONDS)
        if self._saving and self.poller is not None:
            with contextlib.suppress(Exception):
                self.poller.drain()
        servers: list[Callable[[], None]] = []
        if self.lambdas is not None:  # a running invocation (the mirror's watch) is a daemon thread: not waited for
            lambdas = self.lambdas
            servers.append(lambda: lambdas.stop(timeout=INVOCATION_JOIN_SECONDS))
        if self.auth is not None:
            servers.append(self.auth.stop)
            self.auth = None
        _concurrently(servers)  # each waits for its serve loop's next poll
        if self.state is not None and self._saving:
            self._saving = False
            self.state.stop_snapshots(final=True)  # the front, the poller and the data plane have stopped
        _concurrently([self._kube.stop] * self._owns_kube + [self._moto.stop] * self._owns_moto)
        self._release_lock()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def discard_state(self) -> None:
        """``--fresh``: wipe the state a previous stack kept (never a running one's: the lock)."""
        self._acquire_lock()
        try:
            StateFolder(self.config.state_dir).wipe()
        finally:
            self._release_lock()

    # --- single instance --------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        private_directory(self.config.state_dir)  # 0700 and this user's, or the stack does not start
        self._lock_file = single_instance.acquire(self.config.state_dir)

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            single_instance.release(self._lock_file)
            self._lock_file = None
