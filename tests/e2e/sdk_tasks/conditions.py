"""Conditions as a user writes them (flyte-sdk's examples/advanced/conditions.py): a task creates a
condition, waits on it and carries on with the value a person signalled, or with its timeout."""

import flyte
import flyte.errors

env = flyte.TaskEnvironment(name="conditions_env", image="python:3.12-slim")


@env.task
async def approval() -> str:
    condition = await flyte.new_condition.aio("approve", prompt="Ship it?", data_type=bool)
    approved = await condition.wait.aio()
    return f"approved={approved!r}"


@env.task
async def how_many() -> int:
    condition = await flyte.new_condition.aio("count", prompt="How many?", data_type=int)
    return await condition.wait.aio() * 2


@env.task
async def nobody_answers() -> str:
    condition = await flyte.new_condition.aio("approve", prompt="Anyone?", data_type=bool, timeout=3)
    try:
        await condition.wait.aio()
    except flyte.errors.ConditionTimedoutError as exc:
        return f"timed out: {type(exc).__name__}"
    return "signalled"
