"""Pilot helpers shared by the console tests."""

import asyncio


async def wait_for(pilot, condition, timeout: float = 60.0) -> None:
    """Let the app work (workers, timers, message chains) until ``condition()`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


async def settle(pilot) -> None:
    """Wait until the app is idle: its workers done and its message queues empty. A negative
    check ("nothing was launched") comes after this, so it cannot pass only for being early."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
