"""Flyte's examples/caching patterns, as tasks the SDK bundles and runs remotely: each body returns a
random marker, so equal outputs prove the body ran once."""

import asyncio
import random

import flyte
from flyte import Cache

env = flyte.TaskEnvironment(name="cache_env", image="python:3.12-slim")


@env.task(cache=Cache(behavior="override", version_override="v1"))
async def marked(seed: int) -> str:
    return f"seed={seed} marker={random.randint(10_000_000, 99_999_999)}"


@env.task(cache=Cache(behavior="override", version_override="v2"))
async def marked_v2(seed: int) -> str:
    return f"seed={seed} marker={random.randint(10_000_000, 99_999_999)}"


@env.task(cache=Cache(behavior="override", version_override="serialized-v1", serialize=True))
async def serialized(seed: int) -> str:
    await asyncio.sleep(3)  # holds the reservation while the other callers look
    return f"seed={seed} marker={random.randint(10_000_000, 99_999_999)}"


@env.task
async def pipeline_serialized(n: int, seed: int) -> list[str]:
    return list(await asyncio.gather(*(serialized(seed=seed) for _ in range(n))))


@env.task
async def cached_fan_out(n: int, salt: int) -> list[str]:
    return list(await asyncio.gather(*(marked(seed=salt * 1000 + i) for i in range(n))))
