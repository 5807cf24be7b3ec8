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
"""
The asyncio side of the bridge: an event loop in its own thread, and explicit hand-offs.

rclpy's executor owns the ROS callbacks; asyncio owns HTTP and WebSockets. Coroutines go to
asyncio with :meth:`AsyncioThread.submit`; their results come back to the executor as an
rclpy Future completed by an executor task (``Executor.create_task`` wakes the executor),
so a ROS coroutine callback can ``await`` asyncio work without blocking a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Awaitable, Callable, Optional, TypeVar

from rclpy.executors import Executor
from rclpy.task import Future as RclpyFuture

T = TypeVar('T')
_log = logging.getLogger(__name__)


class AsyncioThread:
    """An asyncio event loop running in a daemon thread until :meth:`stop`."""

    def __init__(self, name: str = 'roboflare-asyncio') -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coroutine: Awaitable[T]) -> 'concurrent.futures.Future[T]':
        """Schedule a coroutine on the loop from any thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)  # type: ignore[arg-type]

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run a plain callback on the loop from any thread."""
        self.loop.call_soon_threadsafe(callback, *args)

    def stop(self, shutdown: Optional[Callable[[], Awaitable[None]]] = None,
             timeout: float = 5.0) -> None:
        """
        Run ``shutdown`` on the loop, cancel what is left, stop the thread; bounded, never raises.

        A task may resist cancellation for a while (websockets finishing a close handshake
        behind a flood of frames, say); the process must still exit, so the loop is stopped
        anyway and, being a daemon thread's, left to the interpreter.
        """
        if not self._thread.is_alive():
            return
        if shutdown is not None:
            try:
                self.submit(asyncio.wait_for(shutdown(), timeout)).result(timeout + 1)
            except (asyncio.TimeoutError, concurrent.futures.TimeoutError):
                _log.warning('shutdown did not finish within %.1f s', timeout)
        try:
            self.submit(_cancel_remaining()).result(timeout)
        except concurrent.futures.TimeoutError:
            _log.warning('tasks still running %.1f s after cancellation; stopping anyway', timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


async def _cancel_remaining() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def to_executor(executor: Executor, future: 'concurrent.futures.Future[T]') -> RclpyFuture:
    """
    Return an rclpy Future that completes, in the executor's thread, with ``future``.

    It is completed by a task in the executor's thread (rclpy#1467: set_result from another
    thread does not wake the executor), which then wakes the executor once more: waiting
    coroutines are resumed once per wake-up, and Kilted resumes them before this task runs.
    """
    result: RclpyFuture = RclpyFuture(executor=executor)

    def transfer() -> None:
        if result.done():
            return
        failure = None if future.cancelled() else future.exception()
        if future.cancelled():
            result.cancel()
        elif failure is not None:
            result.set_exception(failure)  # type: ignore[arg-type]  # (rclpy: Exception)
        else:
            result.set_result(future.result())
        executor.wake()

    future.add_done_callback(lambda _: executor.create_task(transfer))
    return result
