"""Configuration from environment variables, validated once per container.

Each function reads only the settings it needs (``ApiSettings`` for the HTTP-facing functions,
``ReconcileSettings`` for the stream consumer) on its first request; a missing or invalid
variable fails that request with a log line naming the variable, never a request later on.

Plain dataclasses rather than pydantic models: building a pydantic model class costs ~60 ms of
every cold start, for five strings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from runplane.table.records import PREVIOUS_RUN_INDEX_NAME, RUN_INDEX_NAME

# Kubernetes namespaces are DNS-1123 labels.
_NAMESPACE_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_TABLE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_BUCKET_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SMALL_INTEGER = re.compile(r"^[1-9][0-9]?$")
_SECONDS = re.compile(r"^[0-9]{1,3}(\.[0-9]+)?$")
_RUN_INDEX_PATTERN = re.compile(f"^({RUN_INDEX_NAME}|{PREVIOUS_RUN_INDEX_NAME})$")
# Project and domain names become Kubernetes label values (runplane.flyte.identifiers).
_LABEL_VALUE_PATTERN = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE_MAX_LENGTH = 63
# CloudWatch Logs' log group names: 1-512 of letters, digits, '_', '-', '/', '.', '#'.
_LOG_GROUP_PATTERN = re.compile(r"^[A-Za-z0-9_\-/.#]{1,512}$")
# The page-token key is generated per stack (template.yaml: PageTokenSecret; the local stack draws
# a random one): never a default anyone could read here. At least this long, as generated.
PAGE_TOKEN_SECRET_MIN_LENGTH = 32
PAGE_TOKEN_SECRET_ENV = "PAGE_TOKEN_SECRET"


class SettingsError(RuntimeError):
    """The function's environment is incomplete or invalid."""


class _Environment:
    def __init__(self, environ: Mapping[str, str] | None) -> None:
        self._environ = os.environ if environ is None else environ

    def get(
        self, name: str, *, default: str | None = None, pattern: re.Pattern[str] | None = None, hint: str = ""
    ) -> str:
        value = self._environ.get(name, default)
        if value is None:
            raise SettingsError(f"environment variable {name} is required")
        if pattern is not None and value and not pattern.match(value):
            raise SettingsError(f"environment variable {name}={value!r} is invalid{': ' + hint if hint else ''}")
        return value


@dataclass(frozen=True, kw_only=True)
class ApiSettings:
    """Settings of the functions behind the HTTP API (create_run, update_action)."""

    actions_table: str
    data_bucket: str
    # Where run data lives when a RunSpec names no run_base_dir; Flyte's `storagePrefix`.
    storage_prefix: str = ""
    # The TaskAction namespace: Flyte's executor derives output paths from it.
    namespace: str = "flyte"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        env = _Environment(environ)
        prefix = env.get("STORAGE_PREFIX", default="")
        if prefix and not prefix.startswith("s3://"):
            raise SettingsError(f"environment variable STORAGE_PREFIX={prefix!r} must be an s3:// URI")
        return cls(
            actions_table=env.get("ACTIONS_TABLE", pattern=_TABLE_NAME_PATTERN, hint="a DynamoDB table name"),
            data_bucket=env.get("DATA_BUCKET", pattern=_BUCKET_NAME_PATTERN, hint="an S3 bucket name"),
            storage_prefix=prefix.rstrip("/"),
            namespace=env.get(
                "TASKACTION_NAMESPACE", default="flyte", pattern=_NAMESPACE_PATTERN, hint="a DNS-1123 label"
            ),
        )

    @property
    def effective_storage_prefix(self) -> str:
        return self.storage_prefix or f"s3://{self.data_bucket}"


@dataclass(frozen=True, kw_only=True)
class _ClusterAccess:
    """What the two functions that talk to the cluster (reconcile, mirror_status) share."""

    actions_table: str
    namespace: str = "flyte"
    # Exactly one way to reach the cluster: a kubeconfig file (local stack, tests) or an EKS
    # cluster name (on AWS: DescribeCluster plus an IAM token, no kubeconfig shipped).
    kubeconfig: str = ""
    eks_cluster_name: str = ""
    # Seconds a Kubernetes call may take; a stuck API server fails the call, not the invocation.
    kube_timeout_seconds: float = 10.0

    @staticmethod
    def _cluster_fields(env: _Environment, *, function: str) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "actions_table": env.get("ACTIONS_TABLE", pattern=_TABLE_NAME_PATTERN, hint="a DynamoDB table name"),
            "namespace": env.get(
                "TASKACTION_NAMESPACE", default="flyte", pattern=_NAMESPACE_PATTERN, hint="a DNS-1123 label"
            ),
            "kubeconfig": env.get("KUBECONFIG", default=""),
            "eks_cluster_name": env.get("EKS_CLUSTER_NAME", default=""),
            "kube_timeout_seconds": float(
                env.get("KUBE_TIMEOUT_SECONDS", default="10", pattern=_SECONDS, hint="seconds")
            ),
        }
        if bool(fields["kubeconfig"]) == bool(fields["eks_cluster_name"]):
            raise SettingsError(f"set exactly one of KUBECONFIG and EKS_CLUSTER_NAME for {function}")
        return fields


@dataclass(frozen=True, kw_only=True)
class ReconcileSettings(_ClusterAccess):
    """Settings of the stream consumer that materialises actions as TaskAction resources."""

    # How many times reconcile tries one action (a parent's TaskAction still missing, an API
    # server failing) before it records the action as failed: below the event source mapping's
    # MaximumRetryAttempts, so an action is failed visibly before its record is given up on.
    max_attempts: int = 5
    # Records of different runs are reconciled concurrently, up to this many at a time.
    concurrency: int = 16
    # Status-mirror shards the resources are labelled for, and the mirror function to wake when
    # reconcile creates a resource in a shard whose watcher is idle ("" disables waking).
    mirror_shards: int = 1
    mirror_function: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReconcileSettings:
        env = _Environment(environ)
        return cls(
            **cls._cluster_fields(env, function="reconcile"),
            max_attempts=int(env.get("RECONCILE_MAX_ATTEMPTS", default="5", pattern=_SMALL_INTEGER, hint="1-99")),
            concurrency=int(env.get("RECONCILE_CONCURRENCY", default="16", pattern=_SMALL_INTEGER, hint="1-99")),
            mirror_shards=int(env.get("MIRROR_SHARDS", default="1", pattern=_SMALL_INTEGER, hint="1-99")),
            mirror_function=env.get("MIRROR_FUNCTION_NAME", default=""),
        )


@dataclass(frozen=True, kw_only=True)
class MirrorSettings(_ClusterAccess):
    """Settings of the status mirror, which watches TaskActions and writes their status back."""

    # How many watchers split the namespace (each resource carries its shard label); the same
    # number reconcile labels with.
    shards: int = 1
    # A watcher whose shard has nothing left to mirror stops after this long without events, so
    # an idle shard costs no Lambda time; reconcile wakes it for the next resource.
    idle_grace_seconds: float = 10.0
    # How often the watcher saves its resourceVersion and renews its lease while events flow.
    checkpoint_interval_seconds: float = 5.0
    # The watcher stops this long before the function's timeout, to checkpoint and hand over.
    stop_margin_seconds: float = 15.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MirrorSettings:
        env = _Environment(environ)

        def seconds(name: str, default: str) -> float:
            return float(env.get(name, default=default, pattern=_SECONDS, hint="seconds"))

        return cls(
            **cls._cluster_fields(env, function="mirror_status"),
            shards=int(env.get("MIRROR_SHARDS", default="1", pattern=_SMALL_INTEGER, hint="1-99")),
            idle_grace_seconds=seconds("MIRROR_IDLE_GRACE_SECONDS", "10"),
            checkpoint_interval_seconds=seconds("MIRROR_CHECKPOINT_SECONDS", "5"),
            stop_margin_seconds=seconds("MIRROR_STOP_MARGIN_SECONDS", "15"),
        )


@dataclass(frozen=True, kw_only=True)
class RunTokenSettings:
    """How reconcile mints the run tokens task pods hold (runplane.aws.run_tokens); ``issuer``
    empty: no tokens (pods then need a credential of their own)."""

    issuer: str = ""
    audience: str = ""
    scope: str = ""
    kms_key_id: str = ""  # on AWS
    key_file: str = ""  # the local stack: a PEM only its user can read
    key_id: str = ""  # the JWK ``kid`` of key_file's key
    lifetime_seconds: int = 24 * 3600

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RunTokenSettings:
        env = _Environment(environ)
        settings = cls(
            issuer=env.get("RUN_TOKEN_ISSUER", default=""),
            audience=env.get("RUN_TOKEN_AUDIENCE", default=""),
            scope=env.get("RUN_TOKEN_SCOPE", default=""),
            kms_key_id=env.get("RUN_TOKEN_KMS_KEY_ID", default=""),
            key_file=env.get("RUN_TOKEN_KEY_FILE", default=""),
            key_id=env.get("RUN_TOKEN_KEY_ID", default=""),
            lifetime_seconds=int(
                env.get("RUN_TOKEN_LIFETIME_SECONDS", default="86400", pattern=re.compile(r"^[0-9]{2,7}$"))
            ),
        )
        if settings.issuer and not (settings.audience and settings.scope):
            raise SettingsError("RUN_TOKEN_ISSUER needs RUN_TOKEN_AUDIENCE and RUN_TOKEN_SCOPE")
        if settings.issuer and bool(settings.kms_key_id) == bool(settings.key_file):
            raise SettingsError("RUN_TOKEN_ISSUER needs exactly one of RUN_TOKEN_KMS_KEY_ID and RUN_TOKEN_KEY_FILE")
        return settings


@dataclass(frozen=True, kw_only=True)
class ReadSettings:
    """Settings of the read function (Get/List/Watch)."""

    actions_table: str
    # Signs page tokens so an altered one is refused; rotate it and outstanding tokens expire.
    # Required: a per-stack secret (see PAGE_TOKEN_SECRET_MIN_LENGTH).
    page_token_secret: str
    # How long a Watch call waits for a change before it ends the stream (the SDK re-subscribes);
    # under API Gateway's 30 s integration limit.
    watch_window_seconds: float = 20.0
    # How often a quiet watch of a parent's children reads the family's changes (one Query of the
    # family index, half a read unit when little changed): it polls every 50 ms right after it
    # starts and after each change, backing off to this while nothing changes
    # (functions/read_runs/child_watch.PollPace), so a waiting parent costs about one Query a second.
    change_poll_seconds: float = 1.0
    # The TaskAction namespace: the output paths watches report are derived from it.
    namespace: str = "flyte"
    # The run index ListRuns reads: the current one, or the previous one while a stack moves onto
    # the current one (template.yaml: KeepPreviousRunIndex).
    run_index: str = RUN_INDEX_NAME

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReadSettings:
        env = _Environment(environ)
        return cls(
            actions_table=env.get("ACTIONS_TABLE", pattern=_TABLE_NAME_PATTERN, hint="a DynamoDB table name"),
            page_token_secret=_page_token_secret(env),
            watch_window_seconds=float(env.get("WATCH_WINDOW_SECONDS", default="20", pattern=_SECONDS, hint="seconds")),
            change_poll_seconds=float(env.get("CHANGE_POLL_SECONDS", default="1", pattern=_SECONDS, hint="seconds")),
            namespace=env.get(
                "TASKACTION_NAMESPACE", default="flyte", pattern=_NAMESPACE_PATTERN, hint="a DNS-1123 label"
            ),
            run_index=env.get(
                "RUN_INDEX_NAME",
                default=RUN_INDEX_NAME,
                pattern=_RUN_INDEX_PATTERN,
                hint=f"{RUN_INDEX_NAME} or {PREVIOUS_RUN_INDEX_NAME}",
            ),
        )


def _page_token_secret(env: _Environment) -> str:
    value = env.get(PAGE_TOKEN_SECRET_ENV)
    if len(value) < PAGE_TOKEN_SECRET_MIN_LENGTH:  # the value itself is never logged
        raise SettingsError(
            f"environment variable {PAGE_TOKEN_SECRET_ENV} must be at least {PAGE_TOKEN_SECRET_MIN_LENGTH}"
            " characters, generated per stack"
        )
    return value


@dataclass(frozen=True, kw_only=True)
class SchedulerSettings:
    """Where trigger schedules point: create_run, through a role that may invoke only it."""

    create_run_arn: str
    role_arn: str
    dead_letter_arn: str
    group: str = "flyte-triggers"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SchedulerSettings:
        env = _Environment(environ)
        return cls(
            create_run_arn=env.get("CREATE_RUN_FUNCTION_ARN"),
            role_arn=env.get("SCHEDULER_ROLE_ARN"),
            dead_letter_arn=env.get("SCHEDULER_DEAD_LETTER_ARN"),
            group=env.get("SCHEDULE_GROUP", default="flyte-triggers"),
        )


@dataclass(frozen=True, kw_only=True)
class ProjectSettings:
    """Flyte's project configuration: the domains every project has (injected into every project,
    never stored) and the projects that exist from the start (Flyte's ``seedProjects``)."""

    domains: tuple[str, ...] = ("development", "production", "staging")  # Flyte's default, in its order
    seed_projects: tuple[str, ...] = ("flytesnacks",)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProjectSettings:
        env = _Environment(environ)
        domains = _label_values(env.get("PROJECT_DOMAINS", default=",".join(cls.domains)), name="PROJECT_DOMAINS")
        if not domains:
            raise SettingsError("environment variable PROJECT_DOMAINS must name at least one domain")
        seeds = _label_values(env.get("SEED_PROJECTS", default=",".join(cls.seed_projects)), name="SEED_PROJECTS")
        return cls(domains=domains, seed_projects=seeds)


def _label_values(text: str, *, name: str) -> tuple[str, ...]:
    """A comma-separated list of names that become label values (projects, domains)."""
    values = tuple(part.strip() for part in text.split(",") if part.strip())
    for value in values:
        if len(value) > _LABEL_VALUE_MAX_LENGTH or not _LABEL_VALUE_PATTERN.match(value):
            raise SettingsError(f"environment variable {name}: {value!r} is not a valid project or domain name")
    return values


@dataclass(frozen=True, kw_only=True)
class TaskLogSettings:
    """Where the task pods' output is (TailLogs): a CloudWatch Logs group, as EKS's Container
    Insights (Fluent Bit) ships it, and how long a tail of a running attempt follows it."""

    log_group: str
    namespace: str = "flyte"
    follow_seconds: float = 20.0  # under API Gateway's 30 s integration limit, as the watches

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TaskLogSettings:
        env = _Environment(environ)
        return cls(
            log_group=env.get("TASK_LOG_GROUP", pattern=_LOG_GROUP_PATTERN, hint="a CloudWatch Logs group name"),
            namespace=env.get(
                "TASKACTION_NAMESPACE", default="flyte", pattern=_NAMESPACE_PATTERN, hint="a DNS-1123 label"
            ),
            follow_seconds=float(env.get("WATCH_WINDOW_SECONDS", default="20", pattern=_SECONDS, hint="seconds")),
        )


@cache
def project_settings() -> ProjectSettings:
    return ProjectSettings.from_env()


@cache
def task_log_settings() -> TaskLogSettings:
    return TaskLogSettings.from_env()


@cache
def scheduler_settings() -> SchedulerSettings:
    return SchedulerSettings.from_env()


@cache
def read_settings() -> ReadSettings:
    return ReadSettings.from_env()


@cache
def page_token_secret() -> bytes:
    """The stack's page-token key, for functions that page without the rest of ReadSettings."""
    return _page_token_secret(_Environment(None)).encode()


@cache
def api_settings() -> ApiSettings:
    return ApiSettings.from_env()


@cache
def reconcile_settings() -> ReconcileSettings:
    return ReconcileSettings.from_env()


@cache
def mirror_settings() -> MirrorSettings:
    return MirrorSettings.from_env()
