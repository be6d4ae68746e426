"""Configuration from environment variables, validated once per container.

Each function reads only the settings it needs (``ApiSettings`` for the HTTP-facing functions,
``ReconcileSettings`` for the stream consumer), so a missing variable fails the cold start with a
message naming it instead of failing a request later.
"""

from __future__ import annotations

import os
import re
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Kubernetes namespaces are DNS-1123 labels.
_NAMESPACE_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class SettingsError(RuntimeError):
    """The function's environment is incomplete or invalid; raised at cold start."""


class _EnvSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None):
        environ = dict(os.environ if environ is None else environ)
        try:
            return cls.model_validate(environ)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise SettingsError(f"invalid {cls.__name__} from the environment: {problems}") from None


class ApiSettings(_EnvSettings):
    """Settings of the functions behind the HTTP API (create_run, update_action)."""

    actions_table: str = Field(alias="ACTIONS_TABLE", min_length=3, max_length=255)
    data_bucket: str = Field(alias="DATA_BUCKET", min_length=3, max_length=63)
    # Where run data lives when a RunSpec names no run_base_dir; Flyte's `storagePrefix`.
    storage_prefix: str = Field(default="", alias="STORAGE_PREFIX")

    @field_validator("storage_prefix")
    @classmethod
    def _prefix_is_s3(cls, value: str) -> str:
        if value and not value.startswith("s3://"):
            raise ValueError("must be an s3:// URI")
        return value.rstrip("/")

    @property
    def effective_storage_prefix(self) -> str:
        return self.storage_prefix or f"s3://{self.data_bucket}"


class ReconcileSettings(_EnvSettings):
    """Settings of the stream consumer that materialises actions as TaskAction resources."""

    actions_table: str = Field(alias="ACTIONS_TABLE", min_length=3, max_length=255)
    namespace: str = Field(default="flyte", alias="TASKACTION_NAMESPACE")
    # Exactly one way to reach the cluster: a kubeconfig file (local stack, tests) or an EKS
    # cluster name (on AWS: DescribeCluster plus an IAM token, no kubeconfig shipped).
    kubeconfig: str = Field(default="", alias="KUBECONFIG")
    eks_cluster_name: str = Field(default="", alias="EKS_CLUSTER_NAME")

    @field_validator("namespace")
    @classmethod
    def _namespace_is_label(cls, value: str) -> str:
        if not _NAMESPACE_PATTERN.match(value):
            raise ValueError("must be a DNS-1123 label")
        return value

    def model_post_init(self, __context) -> None:
        if bool(self.kubeconfig) == bool(self.eks_cluster_name):
            raise SettingsError("set exactly one of KUBECONFIG and EKS_CLUSTER_NAME for reconcile")


@cache
def api_settings() -> ApiSettings:
    return ApiSettings.from_env()


@cache
def reconcile_settings() -> ReconcileSettings:
    return ReconcileSettings.from_env()
