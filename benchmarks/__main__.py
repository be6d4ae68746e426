"""Every benchmark, one after another, and the figures the performance work is held to.

    .venv/bin/python -m benchmarks [--baseline REF] [--skip fan_out ...] [--quick] [--sdk]

Runs ``handlers``, ``reconcile``, ``list_runs``, ``mirror``, ``fan_out``, ``record_batches``,
``events_relay``, ``watch_reads`` and ``task_start`` (each in a process
of its own, never two at once: the machine is shared), and with ``--sdk`` also ``sdk_workloads``
(the SDK's traces, fan-out and informer latency through the local stack against its local mode:
minutes), the first two with a baseline (a git ref,
measured side by side in the same run), then prints each figure next to the value the issue
started from and its target, and writes the table, every benchmark's own output and the machine
it ran on to ``docs/benchmarks.md``.

Absolute times depend on the machine and on whatever else it runs; the ratios (against raw calls,
or against the baseline measured in the same run) are the figures to compare between runs. A
cold start is reported as measured here and projected onto the machine the issue measured on:
its figure then, times this run's ratio of the current code to the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
REPORT = REPO / "docs" / "benchmarks.md"
# What had landed before the performance issue's changes: the side-by-side baseline.
BASELINE_REF = "fc0d25009ec859c276511ba57652c68c92a2bfc0"
BENCHMARKS = (
    "handlers",
    "reconcile",
    "list_runs",
    "mirror",
    "fan_out",
    "record_batches",
    "events_relay",
    "watch_reads",
    "task_start",
    "sdk_workloads",
)
# Run only when asked (--sdk): the whole local stack, several minutes while traces are slow.
OPTIONAL = ("sdk_workloads",)
# The functions the "API functions" figure covers (auth_metadata and console are reported
# too, but they make no AWS client and import a fraction of the rest).
API_FUNCTIONS = ("create_run", "update_action", "read_runs", "task_registry", "data_proxy")


def run(name: str, args: list[str]) -> str:
    """One benchmark in a process of its own; its output (the EMF metric lines left out)."""
    started = time.perf_counter()
    print(f"--- {name} {' '.join(args)}", flush=True)
    output = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "POWERTOOLS_LOG_LEVEL": "WARNING"},
    )
    text = "\n".join(line for line in output.stdout.splitlines() if not line.startswith('{"_aws"'))
    print(text, flush=True)
    if output.returncode != 0:
        raise RuntimeError(f"benchmarks.{name} failed:\n{output.stderr[-4000:]}")
    print(f"    ({time.perf_counter() - started:.0f} s)", flush=True)
    return text


def machine() -> str:
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kilobytes = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory = f", {kilobytes / 1024 / 1024:.1f} GiB of memory"
    one, five, fifteen = os.getloadavg()
    load = f", load average {one:.2f} {five:.2f} {fifteen:.2f} at the start"
    return (
        f"{os.cpu_count()} cores{memory}, {platform.platform()}, Python {platform.python_version()} "
        f"({platform.python_implementation()}){load}"
    )


Row = tuple[str, str, str, str, str, bool | None]  # figure, the value, target, baseline, now, met


def cold_rows(cold: dict[str, dict[str, dict[str, float]]]) -> list[Row]:
    """Cold starts: as measured here, the ratio to the baseline measured alongside, and that ratio
    applied to the issue's figures (the machine they were measured on)."""
    now, before = cold["current"], cold.get("baseline", {})
    rows: list[Row] = []
    for label, names, then, target in (
        ("cold start, API functions", API_FUNCTIONS, (288.0, 313.0), 200.0),
        ("cold start, reconcile", ("reconcile",), (330.0, 330.0), 300.0),
        ("cold start, mirror_status", ("mirror_status",), None, 300.0),
    ):
        walls = [now[n]["median_wall_ms"] for n in names]
        was = [before[n]["median_wall_ms"] for n in names if n in before]
        ratio = statistics.median(now[n]["median_wall_ms"] / before[n]["median_wall_ms"] for n in names if n in before)
        span = f"{min(walls):.0f}-{max(walls):.0f} ms" if len(walls) > 1 else f"{walls[0]:.0f} ms"
        if then is None:
            rows.append((label, "not measured", "", f"{max(was):.0f} ms", f"{span}: {ratio:.2f}x the baseline", None))
            continue
        projected = then[1] * ratio
        rows.append(
            (
                label,
                f"{then[0]:.0f}-{then[1]:.0f} ms" if then[0] != then[1] else f"{then[0]:.0f} ms",
                f"<= {target:.0f} ms",
                f"{min(was):.0f}-{max(was):.0f} ms" if len(was) > 1 else f"{was[0]:.0f} ms",
                f"{span}: {ratio:.2f}x the baseline, so <= {projected:.0f} ms where the issue measured",
                projected <= target,
            )
        )
    floor = now.get("libraries alone")
    if floor:
        api = statistics.median(now[n]["median_wall_ms"] for n in API_FUNCTIONS)
        rows.append(
            (
                "cold start, the libraries alone (protobuf, Powertools, http.client and ssl)",
                "",
                "",
                "",
                f"{floor['median_wall_ms']:.0f} ms: the API functions' median is "
                f"{api / floor['median_wall_ms']:.2f}x that",
                None,
            )
        )
    botocore = now.get("botocore DynamoDB client alone")
    if botocore:
        rows.append(
            (
                "cold start, botocore and a DynamoDB client alone (the functions' table client before)",
                "",
                "",
                "",
                f"{botocore['median_wall_ms']:.0f} ms",
                None,
            )
        )
    return rows


def abort_row(now: dict[str, Any], before: dict[str, Any]) -> Row:
    """The abort, as measured here and, like the cold starts, as the ratio to the baseline in the
    same run applied to the issue's figure (an absolute time: the machine's load moves it)."""
    seconds = now["seconds_until_all_aborted_in_table"]
    if not before:
        return (
            "abort of a 1,000-action run, until every action is ABORTED",
            "9.4 s",
            "<= 5 s",
            "",
            f"{seconds:.2f} s",
            seconds <= 5,
        )
    ratio = seconds / before["seconds_until_all_aborted_in_table"]
    return (
        "abort of a 1,000-action run, until every action is ABORTED",
        "9.4 s",
        "<= 5 s",
        f"{before['seconds_until_all_aborted_in_table']:.2f} s",
        f"{seconds:.2f} s: {ratio:.2f}x the baseline, so {9.4 * ratio:.1f} s where the issue measured",
        9.4 * ratio <= 5,
    )


def figures(handlers: dict[str, Any], reconcile: dict[str, Any]) -> list[Row]:
    """The rows of the figures the issue names."""
    rows = cold_rows(handlers["cold_start"])
    create, status = handlers["warm"]["create_run"], handlers["warm"]["update_action_status"]
    rows.append(
        (
            "warm CreateRun / the raw calls it cannot avoid",
            "3.18x",
            "<= 1.3x",
            "",
            f"{create['ratio']:.2f}x (SDK path, inputs offloaded: vs one PutItem); "
            f"{create['inline_ratio']:.2f}x (inline inputs: vs PutObject + PutItem)",
            max(create["ratio"], create["inline_ratio"]) <= 1.3,
        )
    )
    rows.append(
        (
            "warm UpdateActionStatus / raw guarded UpdateItem",
            "1.74x",
            "<= 1.3x",
            "",
            f"{status['ratio']:.2f}x (vs the same guarded UpdateItem); "
            f"{status['ratio_to_simple']:.2f}x (vs the simpler one measured before)",
            status["ratio"] <= 1.3,
        )
    )
    m, a = reconcile["current"]["materialise"], reconcile["current"]["abort"]
    base = reconcile.get("baseline")
    bm, ba = (base["materialise"], base["abort"]) if base else ({}, {})
    ceiling = m["raw_concurrent_creates_per_second"] / m["raw_serial_creates_per_second"]
    rows += [
        (
            "reconcile materialisation / serial raw creates",
            "0.97x",
            ">= 2x",
            f"{bm['ratio']:.2f}x" if bm else "",
            f"{m['ratio']:.2f}x (the API server's own ceiling, the creates alone at "
            f"{m['concurrency']} in flight: {ceiling:.2f}x; moto's reads alone: "
            f"{m['reads_alone_share_of_reconcile']:.0%} of reconcile's time)",
            m["ratio"] >= 2,
        ),
        (
            "reconcile materialisation / raw floor (the same calls, same concurrency)",
            "",
            ">= 0.8x",
            f"{bm['ratio_to_floor']:.2f}x" if bm else "",
            f"{m['ratio_to_floor']:.2f}x",
            m["ratio_to_floor"] >= 0.8,
        ),
        abort_row(a, ba),
    ]
    units = handlers["write_units"]
    for life, label in (
        ("root", "write units, a run's root, its life end to end"),
        ("child", "write units, a child action, its life end to end"),
        ("earlier_life", "write units, the earlier life (create, 4 updates, 5 events, index)"),
    ):
        now_units = units["current"][life]["total"]
        was = units.get("baseline", {}).get(life, {}).get("total")
        rows.append(
            (
                label,
                "20" if life == "earlier_life" else "",
                "<= 12",
                "" if was is None else str(was),
                str(now_units),
                now_units <= 12,
            )
        )
    return rows


def sdk_rows(task_start: dict[str, Any] | None, workloads: dict[str, Any] | None) -> list[Row]:
    """The figures of the executor's start and the SDK's hot paths (issue 21)."""
    rows: list[Row] = []
    if task_start:
        plain, forked = task_start["median_ms"]["plain"], task_start["median_ms"]["fork server"]
        rows.append(
            (
                "task process start -> task code running (plain vs fork server)",
                "about 1,800 ms",
                "",
                f"{plain:.0f} ms (plain start)",
                f"{forked:.0f} ms: {plain / forked:.0f}x faster",
                None,
            )
        )
    if workloads:
        latency = workloads["informer_latency_ms"]
        plain = workloads.get("plain_per_child_ms")
        rows += [
            (
                "per traced call, through the stack vs local mode",
                "about 5,400 ms",
                "<= 150 ms",
                "",
                f"{workloads['per_trace_ms']:.0f} ms",
                workloads["per_trace_ms"] <= 150,
            ),
            (
                "per child of a fan-out, through the stack vs local mode",
                "1,800 ms",
                "<= 150 ms",
                "" if plain is None else f"{plain:.0f} ms (plain process starts)",
                f"{workloads['per_child_ms']:.0f} ms",
                workloads["per_child_ms"] <= 150,
            ),
            (
                "a child's end in the table -> the parent's informer",
                "at least about 1,500 ms",
                "p99 <= 300 ms",
                "",
                f"p50 {latency['p50']:.0f} ms, p99 {latency['p99']:.0f} ms",
                latency["p99"] <= 300,
            ),
        ]
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| figure | the issue's value | target | baseline, this run | now, this run | met |",
        "|---|---|---|---|---|---|",
    ]
    verdicts = {True: "yes", False: "no", None: ""}
    lines += [f"| {a} | {b} | {c} | {d} | {e} | {verdicts[met]} |" for a, b, c, d, e, met in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=BASELINE_REF, help="git ref measured side by side ('' for none)")
    parser.add_argument("--skip", nargs="*", default=[], choices=BENCHMARKS)
    parser.add_argument("--quick", action="store_true", help="fewer samples: a smoke run, not figures to keep")
    parser.add_argument("--sdk", action="store_true", help="also sdk_workloads (the local stack, minutes)")
    args = parser.parse_args(argv)
    started_at = datetime.now(UTC)
    host = machine()
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    quick = args.quick
    arguments: dict[str, list[str]] = {
        "handlers": ["--baseline", args.baseline]
        + (["--cold-runs", "5", "--warm-calls", "60"] if quick else ["--cold-runs", "7", "--warm-calls", "300"]),
        "reconcile": ["--baseline", args.baseline] + (["--rounds", "1", "--abort-actions", "300"] if quick else []),
        "list_runs": ["--runs", "1000", "--samples", "3"] if quick else [],
        "mirror": ["--actions", "50", "--samples", "20"] if quick else [],
        "fan_out": ["--children", "10"] if quick else [],
        "record_batches": ["--rounds", "2"] if quick else [],
        "events_relay": ["--calls", "20", "--samples", "5"] if quick else [],
        "watch_reads": [],  # read units a minute of a waiting parent, runs of 100 and 1,000 actions
        "task_start": ["--samples", "3"] if quick else [],
        "sdk_workloads": ["--traces", "5", "--children", "5", "--latency-children", "5"] if quick else ["--plain-too"],
    }
    outputs: dict[str, str] = {}
    for name in BENCHMARKS:
        if name not in args.skip and (name not in OPTIONAL or args.sdk):
            outputs[name] = run(name, arguments[name])

    rows: list[Row] = []
    load: Callable[[str], dict[str, Any]] = lambda name: json.loads((RESULTS / f"{name}.json").read_text())  # noqa: E731
    if "handlers" in outputs and "reconcile" in outputs:
        rows = figures(load("handlers"), load("reconcile"))
    rows += sdk_rows(
        load("task_start") if "task_start" in outputs else None,
        load("sdk_workloads") if "sdk_workloads" in outputs else None,
    )
    if rows:
        print("\n" + table(rows))

    sections = [
        "# Benchmarks",
        "",
        "Written by `.venv/bin/python -m benchmarks` (`benchmarks/__main__.py`); every figure below is from",
        f"one run: {started_at:%Y-%m-%d %H:%M} UTC, commit `{commit}` (and its working tree), baseline",
        f"`{args.baseline[:12] or 'none'}` measured side by side in the same run.",
        "",
        f"Machine: {host}. The machine is shared and its speed varies from one minute to the next:",
        "compare the ratios (against raw calls, or against the baseline in the same run), not the",
        "absolute times.",
        "",
    ]
    if rows:
        sections += ["## The figures the performance work is held to", "", table(rows), ""]
    for name, text in outputs.items():
        sections += [f"## {name}", "", "```", text.strip(), "```", ""]
    if not quick:
        REPORT.write_text("\n".join(sections))
        print(f"\nwritten to {REPORT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
