"""AWS clients for the control plane: botocore's low-level clients, made once per container and cheaply.

The table, the bucket and EKS have clients of their own (``runplane.aws.http``: every function
calls one on its first request, and botocore would be most of its cold start). The other
services (Lambda, Scheduler, CloudWatch Logs) are called off the hot paths, through botocore's
low-level clients. ``boto3.client`` builds exactly these, and costs more at every
cold start than it gives (``python -X importtime`` and a CPU profile of the functions' first call):

- importing boto3 imports s3transfer and boto3's resource machinery, which no function uses;
- botocore's loader lists every service it ships (one directory listing per service, over 400)
  before it loads the first model, only to check the name it was given.

So: one botocore session per process, configured from the environment exactly as boto3's default
session is (credentials, region, ``AWS_ENDPOINT_URL``, retries from the ``Config`` given), whose
loader knows only the services this control plane calls. Clients are made under a lock: a
botocore session is not safe for concurrent ``create_client`` calls (reconcile and the local
stack make clients from worker threads).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config
    from botocore.loaders import Loader
    from botocore.session import Session

# The services the functions call through botocore (the table, the bucket and EKS go through
# runplane.aws.http). A client of any other is refused: add it here first (the loader answers only
# for these, so botocore could not load its model anyway).
SERVICES = frozenset({"lambda", "scheduler", "logs", "kms"})  # kms: reconcile signs run tokens

_lock = threading.Lock()
_sessions: list[Session] = []  # the process's one session, made on the first client


def session() -> Session:
    """The process's botocore session (made on first use)."""
    with _lock:
        if not _sessions:
            _sessions.append(_new_session())
        return _sessions[0]


def client(service: str, *, config: Config | None = None, region_name: str | None = None) -> Any:
    """A low-level client of ``service`` (one of ``SERVICES``), as ``boto3.client`` would make it."""
    if service not in SERVICES:
        raise ValueError(f"{service!r} is not a service this control plane calls (runplane.aws.clients.SERVICES)")
    shared = session()
    with _lock:
        return shared.create_client(service, config=config, region_name=region_name)


def _new_session() -> Session:
    import botocore.session

    new = botocore.session.Session()
    new.register_component("data_loader", _known_services_loader(new.get_config_variable("data_path")))
    return new


def _known_services_loader(data_path: str | None) -> Loader:
    """botocore's loader, with its search path (``AWS_DATA_PATH`` included), told which services exist."""
    from botocore.loaders import Loader

    class KnownServicesLoader(Loader):
        def list_available_services(self, type_name: str) -> list[str]:
            return sorted(SERVICES)

    extra = (
        [os.path.expanduser(os.path.expandvars(path)) for path in data_path.split(os.pathsep)] if data_path else None
    )
    return KnownServicesLoader(extra_search_paths=extra)
