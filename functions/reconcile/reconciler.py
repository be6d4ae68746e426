"""Make the cluster match the table, one stream record at a time.

DynamoDB is the system of record; this is the only code that changes TaskActions.

- **A new action** (INSERT) becomes its TaskAction: a root on its own, a child with an owner
  reference to its parent's resource. Whether it is created is decided on the action's *current*
  phase, read from the table, not the stream image's, so replaying an old record never resurrects
  an action that has ended; the resource is built from the image (the specs, the parent and the
  key an INSERT carries never change), so that read is of the phase alone.
- **A child whose parent's resource is not there yet** (the parent's record failed and is being
  retried) fails its record, and the stream retries it. **A child whose parent was aborted, or
  ended and its resource is gone,** becomes ABORTED and gets no resource.
- **An abort request** (MODIFY that sets ``abort_requested_at``): every descendant that has not
  ended becomes ABORTED here, then the action's resource is deleted with background propagation
  (also when marking the descendants failed: the work stops, and the record is retried); the
  garbage collector removes the descendants' resources through their owner references. Then the
  request is cleared.
- **Retries are bounded**: each failed attempt is counted on the item; after ``max_attempts`` the
  action is FAILED (or the abort recorded as failed) with the reason, and the record succeeds, so
  nothing waits for the stream's retries to run out and nothing is dropped silently.

Every step is idempotent: the stream delivers at least once and redelivers the rest of a batch
after a failed record. A TaskAction that already exists for the same action is success; one that
belongs to a different action (run names shared across projects, docs/flyte-compat.md#q9-name-collisions) marks this
action FAILED, never silently accepted.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from functions.reconcile.taskaction import build_taskaction
from runplane.aws.run_tokens import RunTokenMinter
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey, taskaction_name
from runplane.kube.client import AlreadyExists, ResourceRejected
from runplane.kube.resources import identity_of
from runplane.table.actions import ActionNode, ActionState, EndResult
from runplane.table.records import ACTION_SORT_PREFIX, ActionRecord


class ReconcileStore(Protocol):
    """The table as reconcile uses it (``runplane.table.actions.ActionStore``)."""

    def get_action_states(self, keys: list[ActionKey]) -> dict[ActionKey, ActionState]: ...
    def resolve_specs(self, record: ActionRecord) -> ActionRecord: ...
    def list_action_tree(self, run: Any) -> list[ActionNode]: ...
    def abort_cascaded(self, key: ActionKey, *, reason: str) -> EndResult: ...
    def abort_cascaded_many(self, keys: list[ActionKey], *, reason: str) -> int: ...
    def finish_abort(self, key: ActionKey, *, requested_at: datetime, error: str = "") -> bool: ...
    def count_attempt(self, key: ActionKey, *, counter: str) -> int: ...
    def fail_action(self, key: ActionKey, *, message: str, kind: str = "KIND_SYSTEM") -> bool: ...


class ReconcileCluster(Protocol):
    """The cluster as reconcile uses it (``runplane.kube.client.TaskActionClient``)."""

    namespace: str

    def create(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def get(self, name: str) -> dict[str, Any] | None: ...
    def delete(self, name: str) -> bool: ...
    def signal(self, name: str, *, value: str, signalled_by: str, signalled_at: str) -> bool: ...


logger = logging.getLogger(__name__)

MATERIALIZE_ATTEMPTS = "reconcile_attempts"  # item counters of failed attempts
# Descendants of an aborted action are marked ABORTED in transactions of this many guarded
# updates (DynamoDB's maximum), this many transactions in flight: a 1,000-action run in ten calls.
CASCADE_CHUNK = 100
CASCADE_CONCURRENCY = 4
# Keys per BatchGetItem when a batch's reads overlap its creates: a small first read, so the
# batch's first records start at once, then larger ones while they run (DynamoDB bills read units
# per item, so several calls cost what one does; they run STATE_READERS at a time, in handler).
FIRST_STATE_READ_CHUNK = 10
STATE_READ_CHUNK = 30
ABORT_ATTEMPTS = "abort_attempts"


class Outcome(StrEnum):
    CREATED = "created"
    ALREADY_PRESENT = "already_present"
    NAME_COLLISION = "name_collision"
    REJECTED = "rejected"
    PARENT_GONE = "parent_gone"  # the child was aborted with its parent
    GAVE_UP = "gave_up"  # retries exhausted; recorded on the action
    ABORTED = "aborted"  # an abort request carried out
    SKIPPED = "skipped"
    SIGNALLED = "signalled"  # a condition's signal relayed to its TaskAction


# The ReconcileOutcomes metric's values (runplane.ops.metrics): what an operator tells apart. A record
# that raised is "retried" (counted by the handler from the partial batch response); skipped
# records (status updates, replays) are not counted.
METRIC_OUTCOMES = {
    Outcome.CREATED: "created",
    Outcome.ALREADY_PRESENT: "already_present",
    Outcome.NAME_COLLISION: "failed",
    Outcome.REJECTED: "failed",
    Outcome.GAVE_UP: "failed",
    Outcome.PARENT_GONE: "aborted",
    Outcome.ABORTED: "aborted",
}
RETRIED = "retried"


class ClusterRaceError(RuntimeError):
    """The resource vanished between a 409 and the read that followed."""


class ParentNotMaterialized(RuntimeError):
    """The parent's TaskAction does not exist (yet): its own record is still being retried."""


@dataclass(frozen=True)
class ActionChange:
    """One stream record about an item of the table."""

    event_name: str  # INSERT | MODIFY | REMOVE
    sort_key: str
    new: ActionRecord | None
    old: ActionRecord | None
    # A condition's signal this write added (runplane.table.signals): (base64 value, by, at).
    signal: tuple[str, str, str] | None = None

    @classmethod
    def from_stream_record(cls, record: dict[str, Any]) -> ActionChange:
        change = record["dynamodb"]
        sort_key = change.get("Keys", {}).get("sk", {}).get("S", "")
        # Registry items share the table, and a task or trigger named "A" has a sort key starting
        # with "A#" too: an action item is told by its key *and* its run, never the key alone.
        is_action = sort_key.startswith(ACTION_SORT_PREFIX) and "run_name" in (
            change.get("NewImage") or change.get("OldImage") or {}
        )
        new_image = change.get("NewImage")
        old_image = change.get("OldImage")
        return cls(
            event_name=record["eventName"],
            sort_key=sort_key,
            new=ActionRecord.from_item(new_image) if is_action and new_image else None,
            old=ActionRecord.from_item(old_image) if is_action and old_image else None,
            signal=_added_signal(new_image, old_image) if is_action else None,
        )

    @property
    def requests_abort(self) -> bool:
        requested = self.new.abort_requested_at if self.new else None
        return requested is not None and (self.old is None or self.old.abort_requested_at != requested)


class Reconciler:
    def __init__(
        self,
        *,
        cluster: ReconcileCluster,
        store: ReconcileStore,
        max_attempts: int = 5,
        mirror_shards: int = 1,
        run_tokens: RunTokenMinter | None = None,
    ) -> None:
        """``run_tokens``: mints the run token a root TaskAction carries for its pods (and its
        children inherit); None: pods get none from here."""
        self._cluster = cluster
        self._store = store
        self._max_attempts = max_attempts
        self.mirror_shards = mirror_shards
        self._run_tokens = run_tokens

    def current_states(self, changes: list[ActionChange], *, pool: Executor | None = None) -> BatchState:
        """The current states a batch's records are decided on (the actions new or to abort, and
        the parents of new ones: phase and pending abort, ``ActionStore.get_action_states``). With
        a ``pool`` the reads are issued there in the order of ``changes`` (the handler passes them
        in the order they can start), ``FIRST_STATE_READ_CHUNK`` keys first and
        ``STATE_READ_CHUNK`` after, and this returns at once: each record waits only for
        the read holding its keys (``BatchState.reads_of``), so the first creates overlap the rest
        of the reads."""
        keys = list(dict.fromkeys(key for change in changes for key in _keys_needed(change)))
        if pool is None:
            return BatchState(fetched=set(keys), states=self._store.get_action_states(keys) if keys else {})
        states = BatchState(fetched=set(keys))
        start = 0
        while start < len(keys):
            chunk = keys[start : start + (STATE_READ_CHUNK if start else FIRST_STATE_READ_CHUNK)]
            read = pool.submit(self._store.get_action_states, chunk)
            for key in chunk:
                states.reads[key] = read
            start += len(chunk)
        return states

    def handle(self, change: ActionChange, *, states: BatchState | None = None) -> Outcome:
        if change.new is None:
            return self._skip(change, "not an action, or removed")
        states = states or BatchState()
        if change.event_name == "INSERT":
            return self.materialise(change.new, states=states)
        if change.event_name == "MODIFY" and change.requests_abort:
            return self.carry_out_abort(change.new.key, states=states)
        if change.event_name == "MODIFY" and change.signal is not None:
            return self.relay_signal(change.new.key, change.signal)
        return self._skip(change, "no change reconcile acts on")

    # --- condition signals --------------------------------------------------------------------

    def relay_signal(self, key: ActionKey, signal: tuple[str, str, str]) -> Outcome:
        """SignalEvent's write, onto the condition's TaskAction status; the executor resolves it.
        A resource already gone (the condition ended or was aborted) leaves nothing to do."""
        value, signalled_by, signalled_at = signal
        name = taskaction_name(key)
        if self._cluster.signal(name, value=value, signalled_by=signalled_by, signalled_at=signalled_at):
            logger.info("condition signalled", extra={"taskaction": name, "action": str(key)})
            return Outcome.SIGNALLED
        return Outcome.SKIPPED

    # --- new actions ------------------------------------------------------------------------

    def materialise(self, record: ActionRecord, *, states: BatchState | None = None) -> Outcome:
        """Create the TaskAction of ``record`` (the INSERT's image, or the stored item), unless
        the action's current phase says it has ended."""
        if not record.needs_taskaction:
            return self._skip_record(record, "traces and recorded actions have no TaskAction to create")
        states = states or BatchState()
        current = self._state(record.key, states)  # the stream image may be an old one
        if current is None or phases.is_terminal(current.phase):
            return self._skip_record(record, "the action has ended")
        return self._bounded(
            record.key,
            MATERIALIZE_ATTEMPTS,
            lambda: self._materialise(record, states),
            lambda error, attempts: self._give_up_creating(record, error, attempts),
        )

    def _materialise(self, record: ActionRecord, states: BatchState) -> Outcome:
        if record.parent is None:
            return self._create(record, parent=None, states=states)
        parent_key = _parent_key(record.key, record.parent)
        parent_state = self._state(parent_key, states)
        if parent_state is None:
            self._fail(record, f"parent action {record.parent!r} does not exist")
            return Outcome.REJECTED
        if parent_state.phase == phases.ABORTED:
            return self._abort_with_parent(record, f"parent action {record.parent!r} was aborted")
        parent_name = taskaction_name(parent_key)
        parent = states.resource(parent_name) or self._cluster.get(parent_name)
        if parent is None or identity_of(parent) != _identity(parent_key):
            if phases.is_terminal(parent_state.phase):
                return self._abort_with_parent(
                    record, f"parent action {record.parent!r} ended and its TaskAction is gone"
                )
            raise ParentNotMaterialized(f"the TaskAction of parent action {record.parent!r} does not exist yet")
        states.remember(parent)
        return self._create(record, parent=parent, states=states)

    def _create(self, record: ActionRecord, *, parent: dict[str, Any] | None, states: BatchState) -> Outcome:
        record = self._store.resolve_specs(record)  # a large spec lives in the data bucket
        token = self._run_tokens.mint(record.key.run_key) if self._run_tokens and record.is_root else ""
        body = build_taskaction(
            record, namespace=self._cluster.namespace, parent=parent, mirror_shards=self.mirror_shards, run_token=token
        )
        name = body["metadata"]["name"]
        try:
            states.remember(self._cluster.create(body))
        except AlreadyExists:
            existing = self._cluster.get(name)
            if existing is None:
                raise ClusterRaceError(f"TaskAction {name} answered 409 but is gone") from None
            if identity_of(existing) == identity_of(body):
                states.remember(existing)
                logger.info("TaskAction already present", extra={"taskaction": name, "action": str(record.key)})
                return Outcome.ALREADY_PRESENT
            owner = "/".join(identity_of(existing))
            self._fail(
                record, f"TaskAction {name} already belongs to action {owner}; run names must be unique per namespace"
            )
            return Outcome.NAME_COLLISION
        except ResourceRejected as exc:
            self._fail(record, f"the cluster rejected TaskAction {name}: {exc}")
            return Outcome.REJECTED
        logger.info("TaskAction created", extra={"taskaction": name, "action": str(record.key)})
        return Outcome.CREATED

    def _abort_with_parent(self, record: ActionRecord, reason: str) -> Outcome:
        self._store.abort_cascaded(record.key, reason=reason)
        logger.info("child aborted with its parent", extra={"action": str(record.key), "reason": reason})
        return Outcome.PARENT_GONE

    def _give_up_creating(self, record: ActionRecord, error: Exception, attempts: int) -> Outcome:
        self._fail(record, f"no TaskAction after {attempts} attempts: {error}")
        return Outcome.GAVE_UP

    # --- aborts -----------------------------------------------------------------------------

    def carry_out_abort(self, key: ActionKey, *, states: BatchState | None = None) -> Outcome:
        states = states or BatchState()
        current = self._state(key, states)
        requested_at = current.abort_requested_at if current is not None else None
        if requested_at is None:
            return Outcome.SKIPPED  # already carried out (a replay, or a later record of it)
        return self._bounded(
            key,
            ABORT_ATTEMPTS,
            lambda: self._abort(key, requested_at, states),
            lambda error, attempts: self._give_up_aborting(key, requested_at, error, attempts),
        )

    def _abort(self, key: ActionKey, requested_at: datetime, states: BatchState) -> Outcome:
        """The descendants are marked ABORTED before the resources go: once the garbage collector
        deletes them, the status mirror writes each deleted, unfinished action's ABORTED too, and
        such a write landing first cancels the cascade's transaction holding that action, which
        is then sent again (on the local stack, too, the API server's deletions of a large subtree
        no longer compete with the table's writes for the same cores). The resource is deleted
        whatever the cascade did, so a failing table never keeps the work running."""
        name = taskaction_name(key)
        states.forget(name)
        try:
            aborted = self._abort_descendants(key)
        finally:
            deleted = self._cluster.delete(name)  # background: the garbage collector takes the subtree
        self._store.finish_abort(key, requested_at=requested_at)
        logger.info("abort carried out", extra={"taskaction": name, "deleted": deleted, "descendants_aborted": aborted})
        return Outcome.ABORTED

    def _abort_descendants(self, key: ActionKey) -> int:
        """Every descendant that has not ended becomes ABORTED: the run's tree read with one Query
        projecting each action's name, parent and phase, then transactions of guarded updates."""
        children: dict[str, list[ActionNode]] = defaultdict(list)
        for node in self._store.list_action_tree(key.run_key):
            if node.parent:
                children[node.parent].append(node)
        open_descendants, queue = [], deque(children[key.name])
        while queue:
            descendant = queue.popleft()
            queue.extend(children[descendant.name])
            if not phases.is_terminal(descendant.phase):
                open_descendants.append(_sibling_key(key, descendant.name))
        reason = f"ancestor action {key.name!r} was aborted"
        chunks = [open_descendants[i : i + CASCADE_CHUNK] for i in range(0, len(open_descendants), CASCADE_CHUNK)]
        with ThreadPoolExecutor(max_workers=CASCADE_CONCURRENCY) as pool:  # independent transactions
            list(pool.map(lambda keys: self._store.abort_cascaded_many(keys, reason=reason), chunks))
        return len(open_descendants)

    def _give_up_aborting(self, key: ActionKey, requested_at: datetime, error: Exception, attempts: int) -> Outcome:
        message = f"abort not carried out after {attempts} attempts: {error}"
        logger.error(message, extra={"action": str(key)})
        self._store.finish_abort(key, requested_at=requested_at, error=message)
        return Outcome.GAVE_UP

    # --- shared -----------------------------------------------------------------------------

    def _state(self, key: ActionKey, states: BatchState) -> ActionState | None:
        """The action's current phase and pending abort: read ahead with the batch's, or now."""
        if key in states.fetched:
            return states.state(key)
        return self._store.get_action_states([key]).get(key)

    def _bounded(
        self,
        key: ActionKey,
        counter: str,
        attempt: Callable[[], Outcome],
        give_up: Callable[[Exception, int], Outcome],
    ) -> Outcome:
        """Run one attempt; a failure is counted on the item and re-raised (the stream retries the
        record) until the bound, where ``give_up`` records the failure instead."""
        try:
            return attempt()
        except Exception as exc:
            attempts = self._store.count_attempt(key, counter=counter)
            if attempts >= self._max_attempts:
                return give_up(exc, attempts)
            logger.warning(
                "reconcile attempt failed; the stream retries it",
                extra={"action": str(key), "attempt": attempts, "error": str(exc)},
            )
            raise

    def _fail(self, record: ActionRecord, message: str) -> None:
        logger.error(message, extra={"action": str(record.key)})
        self._store.fail_action(record.key, message=message)

    @staticmethod
    def _skip(change: ActionChange, reason: str) -> Outcome:
        logger.debug(
            "record skipped", extra={"event": change.event_name, "sort_key": change.sort_key, "reason": reason}
        )
        return Outcome.SKIPPED

    @staticmethod
    def _skip_record(record: ActionRecord, reason: str) -> Outcome:
        logger.info("record skipped", extra={"action": str(record.key), "reason": reason})
        return Outcome.SKIPPED


@dataclass
class BatchState:
    """What one batch learns once and reuses: the actions' states read ahead of handling it (a
    key not fetched is read when needed), and the TaskActions it created or read (siblings share
    a parent, and a parent created earlier in the batch need not be read back)."""

    fetched: set[ActionKey] = field(default_factory=set)
    states: dict[ActionKey, ActionState] = field(default_factory=dict)
    # Reads still in flight (``Reconciler.current_states`` with a pool): the BatchGetItem of each key.
    reads: dict[ActionKey, Future[dict[ActionKey, ActionState]]] = field(default_factory=dict)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def state(self, key: ActionKey) -> ActionState | None:
        """A fetched key's current state (None: no such item), waiting for its read if needed."""
        read = self.reads.get(key)
        return read.result().get(key) if read is not None else self.states.get(key)

    def reads_of(self, change: ActionChange) -> list[Future[dict[ActionKey, ActionState]]]:
        """The reads a record waits for before it is handled."""
        return [self.reads[key] for key in _keys_needed(change) if key in self.reads]

    def remember(self, resource: dict[str, Any]) -> None:
        with self._lock:
            self.resources[resource["metadata"]["name"]] = resource

    def resource(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self.resources.get(name)

    def forget(self, name: str) -> None:
        with self._lock:
            self.resources.pop(name, None)


def _keys_needed(change: ActionChange) -> list[ActionKey]:
    """The items a record is decided on: a new action and its parent, or an action to abort."""
    new = change.new
    if new is None or not (change.event_name == "INSERT" or change.requests_abort):
        return []
    if change.event_name == "INSERT" and not new.needs_taskaction:
        return []  # traces and recorded actions: nothing to create, nothing to read
    if change.event_name == "INSERT" and new.parent:
        return [new.key, _parent_key(new.key, new.parent)]
    return [new.key]


def _sibling_key(key: ActionKey, name: str) -> ActionKey:
    """Another action of the same run."""
    return ActionKey(project=key.project, domain=key.domain, run=key.run, name=name)


def _parent_key(key: ActionKey, parent: str) -> ActionKey:
    return ActionKey(project=key.project, domain=key.domain, run=key.run, name=parent)


def _identity(key: ActionKey) -> tuple[str, ...]:
    return (key.project, key.domain, key.run, key.name)


def _added_signal(new: dict[str, Any] | None, old: dict[str, Any] | None) -> tuple[str, str, str] | None:
    """The signal a MODIFY added to a condition's item (none if it was there before)."""
    if not new or "signal_value" not in new or (old and "signal_value" in old):
        return None
    import base64

    raw = new["signal_value"]["B"]  # the stream's JSON carries binary values base64-encoded
    value = raw if isinstance(raw, str) else base64.b64encode(raw).decode()
    return value, new.get("signalled_by", {}).get("S", ""), new.get("signalled_at", {}).get("S", "")
