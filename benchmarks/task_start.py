"""A task process's start, the plain way against the fork server, side by side in one run.

    .venv/bin/python -m benchmarks.task_start [--samples 10]

Each sample starts the same console script (a ``#!`` script of this interpreter, as the SDK's
``a0`` is) through the executor's ``Launcher``: once the plain way (``subprocess``, a fresh
interpreter) and once forked from the fork server, interleaved. The script imports what ``a0``
imports before it loads the task (``PRELOAD_MODULES``) and prints the time: the figure is the
time from the launch call to that line (the task's code running), and to the exit being seen.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from local_stack.executor.process import Launcher
from local_stack.forkserver import PRELOAD_MODULES, ForkServer

RESULTS = Path(__file__).resolve().parent / "results"


def probe_script(folder: Path, interpreter: str) -> Path:
    imports = "\n".join(f"import {name}" for name in PRELOAD_MODULES)
    script = folder / "start-probe"
    script.write_text(f"#!{interpreter}\nimport time\n{imports}\nprint(time.time(), flush=True)\n")
    script.chmod(0o755)
    return script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args(argv)
    interpreter = str(Path(sys.executable).parent / "python")
    folder = Path(tempfile.mkdtemp(prefix="bench-task-start-"))
    env = dict(os.environ)
    script = probe_script(folder, interpreter)
    ready_started = time.perf_counter()
    server = ForkServer(interpreter=interpreter, environment=env, work_dir=folder / "server").start()
    assert server.wait_ready(), server.problem
    ready_seconds = time.perf_counter() - ready_started
    ways = {"plain": Launcher(), "fork server": Launcher(server)}
    running: dict[str, list[float]] = {way: [] for way in ways}
    ended: dict[str, list[float]] = {way: [] for way in ways}
    try:
        for sample in range(args.samples):
            for way, launcher in ways.items():
                cwd = folder / f"{sample}-{way.replace(' ', '-')}"
                cwd.mkdir()
                log = cwd / "task.log"
                started = time.time()
                process = launcher.launch([str(script)], cwd=cwd, env=env, log_file=log)
                assert process.wait(60) == 0, log.read_text()
                ended[way].append(time.time() - started)
                running[way].append(float(log.read_text().split()[-1]) - started)
    finally:
        server.stop()
    medians = {way: statistics.median(values) * 1000 for way, values in running.items()}
    print(f"Task process start, {args.samples} interleaved samples (the SDK's entrypoint imports, then the task)")
    for way in ways:
        print(
            f"  {way:12} task code running after {medians[way]:7.1f} ms (median; max {max(running[way]) * 1000:.0f} ms)"
            f", exit seen after {statistics.median(ended[way]) * 1000:7.1f} ms"
        )
    print(
        f"  the fork server starts tasks {medians['plain'] / medians['fork server']:.0f}x faster; "
        f"its own start (the SDK's import, once): {ready_seconds * 1000:.0f} ms"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "task_start.json").write_text(
        json.dumps({"median_ms": medians, "server_ready_ms": ready_seconds * 1000, "samples": args.samples}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
