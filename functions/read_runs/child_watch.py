"""The watch of a parent's children (ActionsService/WatchForUpdates, StateService/Watch), as a
generator of updates: what the SDK's informer inside a parent task holds open.

1. the parent (one consistent GetItem; ``not_found`` at once when it does not exist) and its
   children (one Query of the family index: the family, never the whole run), then the sentinel;
2. at each poll, the children written since the previous poll (a Query of the family index from
   a little before it: ``runplane.table.families``), each sent when its version is newer than the
   one sent; every ``PARENT_CHECK_SECONDS`` the parent again (a GetItem), and the end once it has ended;
3. the end when the polls end (the watch's window): the SDK's informer subscribes again and is
   sent everything again, so nothing is lost between two streams.

Buffered (``streaming=False``), the watch ends at the first change, as nothing reaches the client
before the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from flyteidl2.workflow.state_service_pb2 import ActionUpdate

from functions.read_runs.child_updates import action_update, family_updates
from runplane.connect.errors import not_found
from runplane.flyte import phases
from runplane.flyte.identifiers import ActionKey
from runplane.table.actions import ActionStore
from runplane.table.families import CHANGE_OVERLAP, action_state, family_changes
from runplane.table.records import ActionRecord

# How often a watch reads its parent again (one eventually consistent GetItem, half a unit): its
# own changes are sent too, and the watch ends once it has ended (its task is gone). Less often
# than the family's polls: the parent's task is the one watching, so its phase rarely matters.
PARENT_CHECK_SECONDS = 1.0
# The adaptive poll. Right after the stream starts and after each child's end it reads the family
# every FAST_POLL_SECONDS for FAST_POLLS polls (the parent acts on an end at once: the next trace,
# the next child), then each poll waits IDLE_BACKOFF times longer, up to BUSY_POLL_SECONDS while a
# child is in flight (its next change reaches the SDK within that) and IDLE_POLL_SECONDS while
# none is (a parent busy with its own code, or done: about one quiet Query a second).
FAST_POLL_SECONDS = 0.05
FAST_POLLS = 4
BUSY_POLL_SECONDS = 0.2
IDLE_POLL_SECONDS = 1.0
IDLE_BACKOFF = 1.5


class PollPace:
    """The interval before the next poll: fast after an end, backing off while nothing ends."""

    def __init__(
        self, *, fast: float = FAST_POLL_SECONDS, busy: float = BUSY_POLL_SECONDS, idle: float = IDLE_POLL_SECONDS
    ) -> None:
        self._fast = fast
        self._busy = max(fast, busy)
        self._idle = max(fast, idle)
        self._fast_left = FAST_POLLS
        self.seconds = fast

    def polled(self, *, ended: bool, in_flight: bool) -> None:
        """After a poll: ``ended``, whether it saw a child end (or appear ended, as a trace does);
        ``in_flight``, whether a child is still running."""
        if ended:
            self._fast_left = FAST_POLLS
        if self._fast_left > 0:
            self._fast_left -= 1
            self.seconds = self._fast
            return
        cap = self._busy if in_flight else self._idle
        self.seconds = min(cap, self.seconds * IDLE_BACKOFF)


# A stream past its window stays open while a child is in flight and the family changed within
# the window (bytes keep flowing: CloudFront's 60 s between bytes is not reached), up to this
# (under the function's 900 s timeout): the SDK sleeps 1 s after every end of stream, and a
# child's end during that second reached the parent a second late.
BUSY_STREAM_LIMIT_SECONDS = 600.0


class ChildWatch:
    def __init__(
        self,
        *,
        store: ActionStore,
        parent: ActionKey,
        namespace: str,
        polls: Iterable[int],
        streaming: bool,
        clock: Callable[[], datetime],
        pace: PollPace | None = None,
    ) -> None:
        """``polls``: one tick per poll, each after ``pace.seconds`` (``RunReader._polls``)."""
        self._store = store
        self._parent = parent
        self._namespace = namespace
        self._polls = polls
        self._streaming = streaming
        self._clock = clock
        self.pace = pace or PollPace()
        self._last_change = clock()
        self._versions: dict[str, int] = {}
        self._sent: dict[str, ActionUpdate] = {}
        self._base = ""

    def __iter__(self) -> Iterator[ActionUpdate | None]:
        client, table = self._store.client, self._store.table_name
        since = self._clock() - CHANGE_OVERLAP
        parent = action_state(client, table_name=table, key=self._parent)
        if parent is None:
            raise not_found(f"action {self._parent} not found")
        children = family_changes(client, table_name=table, parent=self._parent)
        first = family_updates([parent, *children], parent=self._parent.name, namespace=self._namespace) or {}
        self._base = parent.run_output_base
        self._versions = {r.key.name: r.version for r in (parent, *children)}
        self._sent = dict(first)
        yield from first.values()
        yield None  # the sentinel: the informer's cache is in sync
        if phases.is_terminal(parent.phase):
            return
        parent_read = self._clock()
        for _ in self._polls:
            read_at = self._clock()
            changed = list(self._newer(family_changes(client, table_name=table, parent=self._parent, since=since)))
            since = read_at - CHANGE_OVERLAP
            ended = False
            if (read_at - parent_read).total_seconds() >= PARENT_CHECK_SECONDS:
                parent_read = read_at
                current = action_state(client, table_name=table, key=self._parent, consistent=False)
                if current is not None:
                    changed.extend(self._newer([current]))
                    ended = phases.is_terminal(current.phase)
            self.pace.polled(
                ended=any(u.action_id.name != self._parent.name and phases.is_terminal(u.phase) for u in changed),
                in_flight=self._in_flight(),
            )
            if changed:
                self._last_change = read_at
            yield from changed
            if ended or (changed and not self._streaming):
                return

    def busy(self, *, within_seconds: float) -> bool:
        """Whether a child is in flight and the family changed within ``within_seconds``: a
        stream then stays open past its window (``BUSY_STREAM_LIMIT_SECONDS``)."""
        if (self._clock() - self._last_change).total_seconds() >= within_seconds:
            return False
        return self._in_flight()

    def _in_flight(self) -> bool:
        return any(
            name != self._parent.name and not phases.is_terminal(update.phase) for name, update in self._sent.items()
        )

    def _newer(self, records: Iterable[ActionRecord]) -> Iterator[ActionUpdate]:
        """The updates of the records newer than what was sent (the index may lag: an older
        version read after a newer one is never sent), in name order."""
        for record in sorted(records, key=lambda r: r.key.name):
            name = record.key.name
            if record.version <= self._versions.get(name, 0):
                continue
            if name != self._parent.name and record.parent != self._parent.name:
                continue  # not of this family (a grandchild never has this family key)
            self._versions[name] = record.version
            update = action_update(record, namespace=self._namespace, run_output_base=self._base)
            if self._sent.get(name) != update:
                self._sent[name] = update
                yield update
