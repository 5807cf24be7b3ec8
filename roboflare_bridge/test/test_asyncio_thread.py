# Copyright 2026 Roboflare developers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The asyncio thread and the hand-off of its results to an rclpy executor."""

import asyncio
import threading
import time

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from roboflare_bridge.common.asyncio_thread import AsyncioThread, to_executor


@pytest.fixture
def executor():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('loop_thread_test', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield executor
    executor.shutdown()
    node.destroy_node()
    context.try_shutdown()


@pytest.fixture
def loop():
    thread = AsyncioThread()
    yield thread
    thread.stop()


def test_coroutine_callback_awaits_asyncio_work(executor, loop):
    seen_threads = []

    async def work():
        seen_threads.append(threading.current_thread().name)
        await asyncio.sleep(0.05)
        return 42

    async def callback():
        value = await to_executor(executor, loop.submit(work()))
        seen_threads.append(threading.current_thread().name)
        return value

    task = executor.create_task(callback)
    executor.spin_until_future_complete(task, timeout_sec=5)
    assert task.done() and task.result() == 42
    assert seen_threads == ['roboflare-asyncio', threading.current_thread().name]


def test_exceptions_cross_the_hand_off(executor, loop):
    async def work():
        raise ValueError('boom')

    async def callback():
        try:
            await to_executor(executor, loop.submit(work()))
        except ValueError as exc:
            return str(exc)

    task = executor.create_task(callback)
    executor.spin_until_future_complete(task, timeout_sec=5)
    assert task.result() == 'boom'


def test_many_concurrent_hand_offs(executor, loop):
    async def work(i):
        await asyncio.sleep(0.01 * (i % 5))
        return i

    async def callback(i):
        return await to_executor(executor, loop.submit(work(i)))

    tasks = [executor.create_task(callback, i) for i in range(50)]

    async def all_done():
        for task in tasks:
            await task
    gather = executor.create_task(all_done)
    executor.spin_until_future_complete(gather, timeout_sec=10)
    assert [t.result() for t in tasks] == list(range(50))


def test_stop_runs_shutdown_and_cancels_leftovers():
    thread = AsyncioThread()
    closed = []
    forever = thread.submit(asyncio.sleep(3600))

    async def shutdown():
        closed.append(True)
    thread.stop(shutdown, timeout=2)
    assert closed == [True] and forever.cancelled()
    assert thread.loop.is_closed()


def test_stop_is_bounded_and_quiet_when_a_task_resists_cancellation():
    # Like websockets finishing a close handshake behind a flood of frames: the bridge
    # still has to exit (a raise here once left the process hanging until SIGKILL).
    thread = AsyncioThread()
    release = threading.Event()

    async def stubborn():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 30)
    thread.submit(stubborn())
    started = time.monotonic()
    try:
        thread.stop(timeout=0.3)  # must not raise
        assert time.monotonic() - started < 3
    finally:
        release.set()
