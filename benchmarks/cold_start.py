"""Cold starts of every function, as shipped, and of a baseline side by side in one run.

A probe is a fresh interpreter that imports a function's handler module and does what its first
request sets up (settings, clients; for reconcile and the status mirror the EKS-authenticated
Kubernetes client), timed inside the process: Lambda's INIT phase plus the first call's set-up,
network excluded. Each function runs in its own layout (``benchmarks.layout``: the artifact, the
layer and the runtime's packages, nothing else, precompiled as the Makefile ships it), with
``python -S`` so the development environment's packages are not on the path.

Reconcile and the mirror authenticate to EKS on AWS (DescribeCluster, then a presigned STS
token); their artifacts carry no kubeconfig loader. The probes do the same against a local
stand-in for EKS's DescribeCluster (``AWS_ENDPOINT_URL_EKS``), so the set-up is the one Lambda
runs, with one loopback request in it.

With a baseline (a git ref, ``HEAD`` by default: what has landed), the same probes run on the
baseline's code in its own layout, interleaved with the current code's: rounds alternate every
function of both, so both see the same machine load, and the ratio is the figure to compare.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks import layout

PROBE = """
import time, os
t0, c0 = time.perf_counter(), time.process_time()
import importlib
m = importlib.import_module({module!r})
{setup}
print(f"{{(time.perf_counter() - t0) * 1000:.1f}} {{(time.process_time() - c0) * 1000:.1f}}")
"""
BARE = "bare interpreter"
# A self-signed CA is not needed: the Kubernetes client reads the CA file only when it connects.
FAKE_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n").decode()


class _DescribeCluster(BaseHTTPRequestHandler):
    """EKS's DescribeCluster (GET /clusters/<name>), answered for any name."""

    def do_GET(self) -> None:  # http.server's name for it
        name = self.path.rstrip("/").rpartition("/")[2]
        body = json.dumps(
            {"cluster": {"name": name, "endpoint": "https://127.0.0.1:1", "certificateAuthority": {"data": FAKE_CA}}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # http.server's signature: quiet
        pass


@contextmanager
def fake_eks() -> Iterator[str]:
    """A loopback endpoint answering DescribeCluster; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DescribeCluster)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def environment(*, eks_endpoint: str, scratch: Path) -> dict[str, str]:
    """What the functions are configured with on Lambda (the template's variables), locally."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(scratch),  # no ~/.aws of this machine
        "PYTHONNOUSERSITE": "1",
        "ACTIONS_TABLE": "bench-table",
        "DATA_BUCKET": "bench-bucket",
        "PAGE_TOKEN_SECRET": "benchmark-page-token-key-of-32-chars",  # read_runs, task_registry
        "EKS_CLUSTER_NAME": "bench",  # reconcile, mirror_status: EKS authentication, as on AWS
        "AWS_ENDPOINT_URL_EKS": eks_endpoint,
        "AUTH_ISSUER": "https://issuer.example.com",  # auth_metadata
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_SESSION_TOKEN": "x",
    }


def measure(
    probes: Mapping[str, tuple[str, str]], *, runs: int, baseline_ref: str | None
) -> dict[str, dict[str, dict[str, float]]]:
    """``{"current": {probe: stats}, "baseline": {...}}`` (no baseline without a ref); each probe
    names ``(function folder, module, set-up code)`` through ``probes[name] = (module, setup)``
    with the folder taken from the module path."""
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as scratch_dir, fake_eks() as eks:
        scratch = Path(scratch_dir)
        layouts = {"current": layout.build(scratch / "current")}
        if baseline_ref:
            source = layout.checkout(baseline_ref, scratch / "baseline-source")
            layouts["baseline"] = layout.build(scratch / "baseline", source=source)
        env = environment(eks_endpoint=eks, scratch=scratch)
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(runs):  # interleaved rounds: every probe of both sees the same load
            for label, paths in layouts.items():
                for name, (module, setup) in {BARE: ("", ""), **probes}.items():
                    # A function's probe runs in its layout; any other (the libraries alone) in create_run's.
                    folder = module.split(".")[1] if module.startswith("functions.") else "create_run"
                    if folder not in paths:
                        continue  # a function the baseline does not have yet
                    output = subprocess.run(
                        [sys.executable, "-S", "-c", PROBE.format(module=module or "sys", setup=setup)],
                        env={**env, "PYTHONPATH": paths[folder]},
                        capture_output=True,
                        text=True,
                        check=False,
                        cwd=scratch,
                    )
                    if output.returncode != 0:
                        raise RuntimeError(f"probe {name} ({label}) failed:\n{output.stderr[-3000:]}")
                    wall, cpu = output.stdout.split()
                    samples.setdefault((label, name), []).append((float(wall), float(cpu)))
    results: dict[str, dict[str, dict[str, float]]] = {}
    for (label, name), values in samples.items():
        walls = [v[0] for v in values]
        results.setdefault(label, {})[name] = {
            "median_wall_ms": statistics.median(walls),
            "min_wall_ms": min(walls),
            "max_wall_ms": max(walls),
            "median_cpu_ms": statistics.median(v[1] for v in values),
            "runs": len(values),
        }
    return results
