"""A fan-out to N children through the whole local stack, against the same task bodies run directly.

    .venv/bin/python -m benchmarks.fan_out [--children 50]

Through the stack: the real `flyte` SDK runs ``wide_fan_out(n)`` remotely; the local executor runs
the parent and every child as a process of its own (the SDK's `a0` entrypoint, as in a pod), the
parent enqueues the children through the API and waits on WatchForUpdates, and the status mirror
carries every status back. Directly: the same task, the SDK's local mode (every body a coroutine
in this process). The difference, divided by N, is the control plane's and the executor's
overhead per child; most of it is one Python process start with the SDK imported per child.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=50)
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

    import flyte

    from local_stack.stack import LocalStack, StackConfig
    from tests.e2e.sdk_tasks.nested import wide_fan_out

    expected = sum(i * i for i in range(args.children))

    flyte.init()
    started = time.perf_counter()
    direct = flyte.with_runcontext(mode="local").run(wide_fan_out, n=args.children)
    direct_seconds = time.perf_counter() - started
    assert str(expected) in str(direct.outputs()), direct.outputs()

    state = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    stack = LocalStack(StackConfig(state_dir=state, api_port=0, mirror_idle_grace_seconds=5)).start()
    try:
        flyte.init(endpoint=stack.endpoint, insecure=True, org="bench", project="flytesnacks", domain="development")
        started = time.perf_counter()
        run = flyte.with_runcontext(mode="remote").run(wide_fan_out, n=args.children)
        run.wait(quiet=True)
        stack_seconds = time.perf_counter() - started
        assert run.phase == "succeeded" and str(expected) in str(run.outputs()), (run.phase, run.outputs())
    finally:
        stack.stop()
        shutil.rmtree(state, ignore_errors=True)

    overhead = (stack_seconds - direct_seconds) / args.children
    print(
        f"fan-out to {args.children} children: through the stack {stack_seconds:.1f} s, the same bodies directly "
        f"{direct_seconds:.2f} s; overhead {overhead:.2f} s per child on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
