"""The events relay of the local stack: deploy/kubernetes/events-relay/relay.py itself, run in-process.

In the cluster, Flyte's executor sends its unauthenticated Record calls to the relay's Service, and
the relay forwards them to the API with a token of the data-plane client (docs/deploy.md). Locally
the same file is loaded (not a copy: ``importlib`` from the path the ConfigMap is generated from)
and served on loopback, configured as its Deployment is (``RELAY_*`` settings), with the local
issuer's data-plane client and the front as its upstream. The local executor sends its events
here, without credentials, exactly as Flyte's does.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from local_stack.template import REPO_ROOT

RELAY_SCRIPT = REPO_ROOT / "deploy" / "kubernetes" / "events-relay" / "relay.py"
MODULE_NAME = "flyte_events_relay"


def relay_module() -> ModuleType:
    """The relay script as a module (loaded once)."""
    import sys

    module = sys.modules.get(MODULE_NAME)
    if module is None:
        spec = importlib.util.spec_from_file_location(MODULE_NAME, RELAY_SCRIPT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE_NAME] = module  # dataclasses and the like look their module up by name
        spec.loader.exec_module(module)
    return module


class LocalRelay:
    """The relay on a free loopback port, forwarding to ``upstream`` with ``client_id``'s token."""

    def __init__(self, *, upstream: str, token_url: str, client_id: str, secret_file: Path, scopes: str = "") -> None:
        self.settings = {
            "RELAY_UPSTREAM": upstream,
            "RELAY_TOKEN_URL": token_url,
            "RELAY_CLIENT_ID": client_id,
            "RELAY_CLIENT_SECRET_FILE": str(secret_file),
            "RELAY_SCOPES": scopes,
        }
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.relay: Any = None

    def start(self) -> LocalRelay:
        module = relay_module()
        self.relay = module.relay_from(self.settings)
        self._server = module.server_for(self.relay, host="127.0.0.1", port=0)
        self._thread = threading.Thread(target=self._server.serve_forever, name="events-relay", daemon=True)
        self._thread.start()
        return self

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "the relay is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
