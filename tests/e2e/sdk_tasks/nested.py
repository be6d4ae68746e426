"""A nested Flyte workflow as a user writes it: a parent fans out to three children, one of which
calls a grandchild. The local executor runs every task as a process; the SDK inside the parent
enqueues the children through the control plane and learns of their ends from WatchForUpdates."""

import asyncio

import flyte

env = flyte.TaskEnvironment(name="nested_env", image="python:3.12-slim")


@env.task
async def square(x: int) -> int:
    return x * x


@env.task
async def square_plus_one(x: int) -> int:
    return await square(x) + 1


@env.task
async def fan_out(n: int) -> int:
    results = await asyncio.gather(square(n), square(n + 1), square_plus_one(n + 2))
    return sum(results)


@env.task(retries=2)
async def always_fails(x: int) -> int:
    raise ValueError(f"child refuses {x}")


@env.task
async def parent_of_a_failure(x: int) -> str:
    try:
        await always_fails(x)
    except Exception as exc:  # the parent sees its child's error
        return f"child failed: {exc}"
    return "child succeeded"


@env.task
async def sleepy_child(seconds: int) -> int:
    await asyncio.sleep(seconds)
    return seconds


@env.task
async def slow_fan_out(seconds: int) -> int:
    results = await asyncio.gather(sleepy_child(seconds), sleepy_child(seconds + 1))
    return sum(results)


@env.task
async def wide_fan_out(n: int) -> int:
    return sum(await asyncio.gather(*(square(i) for i in range(n))))
