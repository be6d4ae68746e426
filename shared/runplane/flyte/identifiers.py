"""Names: validation and generation of run names, scope names, and TaskAction resource names.

Flyte's rules (docs/flyte-compat.md#names): a run name is at most 30 characters
and a DNS-1035 label because the TaskAction is named ``<run>-<action>`` and plugins derive pod and
service names from it; a generated name is ``r`` + 19 characters from Kubernetes' random alphabet.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runplane.errors import InvalidArgument

ROOT_ACTION_NAME = "a0"  # a run is its root action, always named a0

RUN_NAME_MAX_LENGTH = 30  # CRD: spec.runName maxLength
ACTION_NAME_MAX_LENGTH = 30  # CRD: spec.actionName maxLength
SCOPE_NAME_MAX_LENGTH = 63  # CRD: spec.project / spec.domain maxLength, and label values

_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# An action name only has to keep ``<run>-<action>`` a valid resource name (a DNS-1123 subdomain):
# the SDK names child actions with base-36 hashes, which may start with a digit.
_ACTION_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Project and domain become label values (flyte.org/project, flyte.org/domain) and part of the
# table's partition key, so they must be valid label values and never contain the key separator.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")

# k8s.io/apimachinery/pkg/util/rand: consonants and digits without look-alikes; Flyte uses it.
GENERATED_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
GENERATED_NAME_RANDOM_LENGTH = 19
_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3


@dataclass(frozen=True, slots=True)
class RunKey:
    project: str
    domain: str
    name: str

    def action(self, name: str) -> ActionKey:
        return ActionKey(project=self.project, domain=self.domain, run=self.name, name=name)

    def __str__(self) -> str:
        return f"{self.project}/{self.domain}/{self.name}"


@dataclass(frozen=True, slots=True)
class ActionKey:
    """An action's identity: (project, domain, run name, action name). Org is never part of it."""

    project: str
    domain: str
    run: str
    name: str

    @property
    def run_key(self) -> RunKey:
        return RunKey(project=self.project, domain=self.domain, name=self.run)

    @property
    def is_root(self) -> bool:
        return self.name == ROOT_ACTION_NAME

    def __str__(self) -> str:
        return f"{self.project}/{self.domain}/{self.run}/{self.name}"


def validate_run_name(name: str) -> str:
    if not name:
        raise InvalidArgument("run name must not be empty")
    if len(name) > RUN_NAME_MAX_LENGTH:
        raise InvalidArgument(f"run name {name!r} is longer than {RUN_NAME_MAX_LENGTH} characters")
    if not _DNS_1035_LABEL.match(name):
        raise InvalidArgument(
            f"run name {name!r} must be a DNS-1035 label: lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return name


def validate_action_name(name: str, *, field: str = "action name") -> str:
    """A child action's name: unlike a run name (Flyte checks only those) it may start with a
    digit, but it stays within the CRD's 30 characters and keeps ``<run>-<action>`` a valid
    Kubernetes name."""
    if not name:
        raise InvalidArgument(f"{field} must not be empty")
    if len(name) > ACTION_NAME_MAX_LENGTH:
        raise InvalidArgument(f"{field} {name!r} is longer than {ACTION_NAME_MAX_LENGTH} characters")
    if not _ACTION_NAME.match(name):
        raise InvalidArgument(
            f"{field} {name!r} must be lowercase letters, digits and '-', starting and ending with a letter or digit"
        )
    return name


# The table's partitions of its own (runplane.table: tasks, triggers, projects, mirror leases) are
# keyed ``<NAME>#...``, as a run's partition is ``<project>#<domain>#<run>``: a project (or domain)
# with one of these names would read and write the registry's items as if they were its runs.
RESERVED_SCOPE_NAMES = frozenset({"TASKS", "TRIGGERS", "PROJECTS", "MIRROR"})


def validate_scope_name(value: str, *, field: str) -> str:
    if not value:
        raise InvalidArgument(f"{field} must not be empty")
    if value.upper() in RESERVED_SCOPE_NAMES:
        raise InvalidArgument(f"{field} {value!r} is reserved: it names one of the table's own partitions")
    if len(value) > SCOPE_NAME_MAX_LENGTH or not _LABEL_VALUE.match(value):
        raise InvalidArgument(
            f"{field} {value!r} must be at most {SCOPE_NAME_MAX_LENGTH} characters of letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit"
        )
    return value


REGISTRY_NAME_MAX_LENGTH = 255  # flyteidl2's declared limit for task and trigger names


def validate_registry_name(value: str, *, field: str) -> str:
    """A task name, task version or trigger name: it becomes part of a sort key, so no '#'."""
    if not value or len(value) > REGISTRY_NAME_MAX_LENGTH or "#" in value:
        raise InvalidArgument(f"{field} must be 1-{REGISTRY_NAME_MAX_LENGTH} characters without '#'")
    return value


def registry_key(message: Any, *, field: str, names: tuple[str, str]) -> tuple[str, str, str, str]:
    """(project, domain, *names) of a registry identifier (a task's, a trigger's), validated:
    the scope as a label value, the two names as parts of a sort key."""
    return (
        validate_scope_name(message.project, field=f"{field}.project"),
        validate_scope_name(message.domain, field=f"{field}.domain"),
        validate_registry_name(getattr(message, names[0]), field=f"{field}.{names[0]}"),
        validate_registry_name(getattr(message, names[1]), field=f"{field}.{names[1]}"),
    )


def generate_run_name() -> str:
    suffix = "".join(secrets.choice(GENERATED_NAME_ALPHABET) for _ in range(GENERATED_NAME_RANDOM_LENGTH))
    return "r" + suffix


# "r" + 24 hex characters: 96 bits of an HMAC, within Flyte's 30-character run names.
SCHEDULED_NAME_HEX_LENGTH = 24
_SCHEDULED_NAME_LABEL = b"flyte-serverless scheduled run name\x00"  # keeps this use of the key apart


def scheduled_run_name(
    *, project: str, domain: str, task: str, trigger: str, scheduled_at: datetime, secret: bytes | None = None
) -> str:
    """A trigger's run for one tick: the same tick always names the same run, which makes a
    repeated delivery a duplicate.

    With the stack's ``secret`` (what create_run uses): ``r`` + an HMAC-SHA256 of the trigger and
    the tick, so nobody without the key can predict the name of a project's next scheduled run.
    Without it, Flyte's own name: ``r`` + lowercase hex (no padding) of FNV-1 (not 1a) 64-bit over
    ``project:domain:task:trigger:Y:M:D:h:m:s`` of the UTC scheduled time."""
    at = scheduled_at.astimezone(UTC)
    text = f"{project}:{domain}:{task}:{trigger}:{at.year}:{at.month}:{at.day}:{at.hour}:{at.minute}:{at.second}"
    if secret is not None:
        digest = hmac.new(secret, _SCHEDULED_NAME_LABEL + text.encode(), hashlib.sha256).hexdigest()
        return "r" + digest[:SCHEDULED_NAME_HEX_LENGTH]
    value = _FNV64_OFFSET
    for byte in text.encode():
        value = (value * _FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
        value ^= byte
    return "r" + format(value, "x")


# A TaskAction's name is a DNS-1123 label (services and pods take their names from it): at most
# 63 characters, the readable ``<run>-<action>`` cut to leave room for the hash.
TASKACTION_NAME_MAX_LENGTH = 63
# 48 bits of SHA-256 over project, domain, run and action: two actions of different projects never
# share a resource (one cannot squat another's name), and finding a colliding project name takes
# ~2^47 hashes plus creating that project.
TASKACTION_HASH_LENGTH = 12


def taskaction_name(key: ActionKey) -> str:
    """The TaskAction resource of an action: ``<run>-<action>-<hash>``, where the hash covers the
    project and domain, so the single namespace holds every project's resources without two of
    them ever claiming one name (Flyte's ``<run>-<action>`` is unique only within a project).
    Nothing maps a name back to its action: the resource's labels and spec say which it is."""
    digest = hashlib.sha256(f"{key.project}/{key.domain}/{key.run}/{key.name}".encode()).hexdigest()
    readable = f"{key.run}-{key.name}"[: TASKACTION_NAME_MAX_LENGTH - TASKACTION_HASH_LENGTH - 1]
    return f"{readable}-{digest[:TASKACTION_HASH_LENGTH]}"
