"""The workloads ``benchmarks.sdk_workloads`` runs, written as Flyte's own SDK examples write them
(``examples/basics/trace_sync.py``, ``examples/basics/big_fanout.py``): a task whose loop calls a
``@flyte.trace`` function, a fan-out with ``asyncio.gather``, and a parent that awaits its
children one after another and notes when it sees each one end (the informer's latency)."""

from __future__ import annotations

import asyncio
import time

import flyte

env = flyte.TaskEnvironment(name="bench_workloads", image="python:3.12-slim")


@flyte.trace
async def traced_step(i: int) -> int:
    return i + 1


@env.task
async def traced_loop(n: int) -> int:
    total = 0
    for i in range(n):
        total += await traced_step(i)
    return total


@env.task
async def square(x: int) -> int:
    return x * x


@env.task
async def fan_out(n: int) -> int:
    return sum(await asyncio.gather(*(square(i) for i in range(n))))


@env.task
async def finish(x: int) -> int:
    return x


@env.task
async def sequential_children(n: int) -> list[float]:
    """When this parent saw each child's end (epoch seconds), in the order it started them."""
    seen = []
    for i in range(n):
        await finish(i)
        seen.append(time.time())
    return seen
