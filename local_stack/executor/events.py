"""Where the local executor's ActionEvents go: EventsProxyService/Record on the control plane."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from flyteidl2.workflow import events_proxy_service_pb2, run_definition_pb2

logger = logging.getLogger(__name__)

RECORD_PATH = "/flyteidl2.workflow.EventsProxyService/Record"
# An event the control plane cannot take right now is posted again this often, then dropped (logged).
EVENT_POST_ATTEMPTS = 3
EVENT_RETRY_SECONDS = 0.2
EVENT_TIMEOUT_SECONDS = 5.0


class EventSink:
    """Posts ActionEvents to the control plane's EventsProxyService/Record (Connect, binary proto).
    Failures are logged, never raised: an event lost here must not stop the task."""

    def __init__(self, endpoint: str, *, authorization: Callable[[], str] | None = None) -> None:
        self.url = endpoint.rstrip("/") + RECORD_PATH if endpoint else ""
        # The Authorization header's value (a data-plane bearer token), asked for per event.
        self._authorization = authorization

    def record(self, event: run_definition_pb2.ActionEvent) -> bool:
        if not self.url:
            return False
        body = events_proxy_service_pb2.RecordRequest(events=[event]).SerializeToString()
        headers = {"Content-Type": "application/proto", "Connect-Protocol-Version": "1"}
        if self._authorization is not None:
            headers["Authorization"] = self._authorization()
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        for attempt in range(EVENT_POST_ATTEMPTS):
            try:
                with urllib.request.urlopen(request, timeout=EVENT_TIMEOUT_SECONDS) as response:
                    response.read()
                return True
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or exc.code == 501:  # the request itself is refused: retrying cannot help
                    logger.warning("event refused by %s: %s %s", self.url, exc.code, exc.read()[:500])
                    return False
                error: Exception = exc
            except (urllib.error.URLError, OSError) as exc:
                error = exc
            time.sleep(EVENT_RETRY_SECONDS * 2**attempt)
        logger.warning("event for %s/%s not recorded: %s", event.id.run.name, event.id.name, error)
        return False
