"""What the benchmarks set up before they measure: moto's server in a process of its own (so the
code measured and moto share no interpreter), a run's children written fast, and a benchmark run
on another ref's code in a process of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parent.parent


class OutOfProcessMoto:
    """The local stack's moto (made atomic) in a process of its own."""

    def __init__(self) -> None:
        from local_stack.kube import free_port

        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        script = (
            "import threading; from local_stack.aws import MotoServer; "
            f"MotoServer(port={port}).start(); threading.Event().wait()"
        )
        self._process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
        import urllib.request

        for _ in range(200):
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("moto did not start")

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def enqueue_all(store: Any, requests: list[Any]) -> None:
    """Children as ActionsService/Enqueue builds them (its own code makes each record), written
    with BatchWriteItem: the same items and stream records as one transaction each, without
    moto copying the whole table for every transaction (minutes for a 1,000-action run)."""
    from functions.update_action.service import ActionLifecycleService
    from runplane.table.actions import ChildOutcome

    records = []

    class Collect:  # the store Enqueue writes to: keeps the record instead
        def create_child(self, record: Any) -> Any:
            records.append(record)
            return ChildOutcome(created=True, record=record)

    lifecycle = ActionLifecycleService(store=Collect())  # type: ignore[arg-type]  # only create_child is used
    for request in requests:
        lifecycle.enqueue(request)
    client = store.client
    for start in range(0, len(records), 25):  # BatchWriteItem's maximum
        writes = [{"PutRequest": {"Item": record.to_item()}} for record in records[start : start + 25]]
        pending = {store.table_name: writes}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def figures_of(module: str, args: list[str], *, source: Path | None, cwd: Path) -> dict[str, Any]:
    """Run ``python -m <module> <args>`` (a benchmark printing its figures as JSON on its last
    line) in a process of its own, on ``source``'s code first on the path (a checkout of another
    ref; None: this code), and return the figures."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = f"{source}:{source / 'shared'}:{REPO}"
    output = subprocess.run(
        [sys.executable, "-m", module, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if output.returncode != 0:
        raise RuntimeError(f"{module} failed:\n{output.stderr[-3000:]}")
    return cast("dict[str, Any]", json.loads(output.stdout.strip().splitlines()[-1]))


def save_figures(name: str, figures: dict[str, Any]) -> None:
    """``benchmarks/results/<name>.json``: what ``python -m benchmarks`` reads back into its report."""
    results = REPO / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(figures, indent=2))
