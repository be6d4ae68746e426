"""An event that is set while any of several events is: an action's wait (for the cache, for its
process) ends at the resource's deletion or at the executor's stop, whichever comes first."""

from __future__ import annotations

import threading
import time

# How often a wait looks at the other events: a deletion or a stop is seen within this.
POLL_SECONDS = 0.1


class EitherEvent(threading.Event):
    """Set when either event is: a wait on it ends at a deletion or at the executor's stop."""

    def __init__(self, *events: threading.Event) -> None:
        super().__init__()
        self._events = events

    def is_set(self) -> bool:
        return any(event.is_set() for event in self._events)

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._events[0].wait(min(POLL_SECONDS, left) if left is not None else POLL_SECONDS)
        return True
