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
Helpers shared by the tests and the benchmarks (not used by the bridge itself).

The emulator in a thread or as a process, the bridge as a process, an rclpy harness,
fakes for unit tests without a ROS graph (a publisher, a stream), a small filesystem.
Every ROS process started here runs with DDS on loopback.
"""

import asyncio
from contextlib import contextmanager
import json as json_module
import os
from pathlib import Path
import selectors
import signal
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple
import uuid

import httpx
from rclpy.serialization import deserialize_message
from roboflare_bridge.common.asyncio_thread import AsyncioThread

from .emulator import Emulator, EmulatorConfig


def emulator_control(url: str, token: str, method: str, path: str, json: Any = None) -> Any:
    """Call an emulator's /_emulator control surface over HTTP."""
    response = httpx.request(method, url + path, json=json, timeout=10,
                             headers={'Authorization': f'Bearer {token}'})
    response.raise_for_status()
    return response.json()


class FakePublisher:
    """
    Stands in for an rclpy Publisher: records what is published, with a count to wait on.

    Pass it (or :func:`fake_publishers`) where the code takes ``Node.create_publisher``.
    """

    def __init__(self, cls: Optional[type] = None, topic: str = '', qos: Any = None,
                 subscribers: int = 0, event_callbacks: Any = None) -> None:
        self.cls, self.topic, self.qos, self.subscribers = cls, topic, qos, subscribers
        self.event_callbacks = event_callbacks
        self.messages: List[Any] = []
        self.serialised = 0  # messages published as CDR (kept deserialised in messages)
        self.published = threading.Semaphore(0)  # one release per message

    def publish(self, message: Any) -> None:
        if self.cls is not None and isinstance(message, bytes):
            message = deserialize_message(message, self.cls)  # as a subscriber gets it
            self.serialised += 1
        elif self.cls is not None and not isinstance(message, self.cls):
            raise TypeError(f'{self.topic}: published a {type(message).__name__}, '
                            f'not a {self.cls.__name__}')
        self.messages.append(message)
        self.published.release()

    def get_subscription_count(self) -> int:
        return self.subscribers

    def match(self, subscribers: int) -> None:
        """Have ``subscribers`` matched now, and say so as rclpy's matched event does."""
        self.subscribers = subscribers
        matched = getattr(self.event_callbacks, 'matched', None)
        if matched is not None:
            matched(None)


def fake_publishers(subscribers: int = 0) -> Tuple[Callable[..., FakePublisher],
                                                   Dict[str, FakePublisher]]:
    """Return a ``create_publisher(cls, topic, qos)`` stand-in and the publishers by topic."""
    publishers: Dict[str, FakePublisher] = {}

    def create_publisher(cls: type, topic: str, qos: Any,
                         event_callbacks: Any = None) -> FakePublisher:
        publishers[topic] = FakePublisher(cls, topic, qos, subscribers, event_callbacks)
        return publishers[topic]
    return create_publisher, publishers


class FakeStream:
    """A connected stream that records what is sent on it (JSON frames, parsed, and when)."""

    def __init__(self) -> None:
        self.sent: List[Any] = []
        self.sent_at: List[float] = []

    async def send(self, frame: str) -> bool:
        self.sent.append(json_module.loads(frame))
        self.sent_at.append(asyncio.get_running_loop().time())
        return True


class _VirtualSelector(selectors.DefaultSelector):
    """A selector whose waits advance a virtual clock instead of passing real time."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: Optional[float] = None) -> Any:
        if timeout is not None:
            self.now += timeout  # nothing ready before the next timer: jump to it
            timeout = 0
        return super().select(timeout)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """
    An event loop on a virtual clock: timers fire in order, at once, never late.

    What a test asserts about lingers and deadlines then depends on their order alone,
    not on how loaded the machine is (``asyncio.sleep(0.5)`` returns at once, at 0.5).
    """

    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


def run_in_virtual_time(coroutine: Any) -> Any:
    """Run ``coroutine`` to its end on a :class:`VirtualTimeLoop`; return its result."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


@contextmanager
def small_filesystem(path: Path, size_bytes: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size_bytes`` at ``path`` (skip the test where that is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size_bytes}',
                              'roboflare-test', str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        import pytest
        pytest.skip(f'cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): '
                    f'{mounted.stderr.strip()[:200]}')
    try:
        yield path
    finally:
        subprocess.run(['umount', '-l', str(path)], capture_output=True)


def fill_filesystem(path: Path) -> Path:
    """Fill the filesystem holding ``path`` with one file; return it (delete it to free)."""
    filler = path / 'filler'
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError:
        pass  # ENOSPC: full
    finally:
        os.close(fd)
    return filler


class EmulatorThread:
    """The emulator on a real loopback port, served by an event loop in its own thread."""

    def __init__(self, **config: Any) -> None:
        self._loop_thread = AsyncioThread(name='emulator')

        async def create() -> Emulator:
            emu = Emulator(EmulatorConfig(**config))
            await emu.start()
            return emu
        self.emulator: Emulator = self.call(create)
        self.url = self.emulator.url
        self.token = self.emulator.token

    @property
    def world(self):
        return self.emulator.world

    @property
    def faults(self):
        return self.emulator.faults

    def call(self, coroutine_fn: Callable[..., Any], *args: Any, timeout: float = 30) -> Any:
        """Run a coroutine function on the emulator's loop and return its result."""
        return self._loop_thread.submit(coroutine_fn(*args)).result(timeout)

    def control(self, method: str, path: str, json: Any = None) -> Any:
        """Call the emulator's /_emulator control surface over HTTP."""
        return emulator_control(self.url, self.token, method, path, json)

    def close(self) -> None:
        # Stopped as the bridge's loop is: what the emulator leaves running (a compressed
        # send aiohttp shields from cancellation, say) ends before the loop does, and its
        # exception is retrieved instead of printed as never retrieved.
        self._loop_thread.stop(self.emulator.stop)


class EmulatorProcess:
    """The ``emulator`` executable as a separate process (its own CPU, its own GIL)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([executable('emulator'), '--port', '0', *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, start_new_session=True)
        first = self.proc.stdout.readline().strip()
        if not first.startswith('listening on '):
            self.proc.kill()
            raise RuntimeError(f'emulator did not start: {first!r}')
        self.url = first.split()[-1]
        self.token = self.proc.stdout.readline().strip()

    def control(self, method: str, path: str, json: Any = None) -> Any:
        return emulator_control(self.url, self.token, method, path, json)

    def close(self) -> None:
        stop_process(self.proc)


def wait_future(future: Any, timeout: float) -> Any:
    """Wait for an rclpy Future completed by the harness's executor thread."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if not done.wait(timeout):
        raise TimeoutError(f'no result within {timeout}s')
    return future.result()


class RosHarness:
    """
    A test-side rclpy node spun by a SingleThreadedExecutor in a background thread.

    Entities are destroyed on the executor's thread (:meth:`destroy`): rclpy's destroy
    calls race a wait set built in another thread (ros2/rclpy#255, #1206), and a race
    that raises ends ``spin()``, after which every later test times out. If the executor
    died or hangs anyway, :meth:`check` says so, with the exception or where it hangs.
    """

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('roboflare_test_client', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.failure: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._spin, daemon=True, name='rclpy')
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException, ShutdownException
        try:
            self.executor.spin()
        except (ExternalShutdownException, ShutdownException):
            pass
        except BaseException as error:
            self.failure = error
            raise

    def check(self, timeout: float = 10.0) -> None:
        """Raise if the executor has died or hangs: nothing would be received any more."""
        if self.failure is not None:
            raise RuntimeError("the test node's executor died") from self.failure
        try:
            wait_future(self.executor.create_task(lambda: None), timeout)
        except TimeoutError:
            frame = sys._current_frames().get(self._thread.ident)
            stack = ''.join(traceback.format_stack(frame)) if frame else 'thread gone'
            raise RuntimeError(f"the test node's executor runs no task; it is at:\n{stack}")

    def on_executor(self, make: Callable[[], Any], timeout: float = 10.0) -> Any:
        """
        Run ``make`` on the executor's thread and return its result.

        For action clients, whose rclpy code races the executor's thread: Kilted's
        ActionClient joins the node's wait set before it has its lock (the executor then dies
        on an AttributeError, seen in CI), and Jazzy's registers a request's future after
        sending it, so an answer taken in between is dropped ("Ignoring unexpected ...
        response", ros2/rclpy#1123) and the future never completes.
        """
        return wait_future(self.executor.create_task(make), timeout)

    def request(self, send: Callable[[], Any], timeout: float) -> Any:
        """Make an action client's request on the executor's thread; wait for the answer."""
        return wait_future(self.on_executor(send, timeout), timeout)

    def destroy(self, *entities: Any, timeout: float = 10.0) -> None:
        """Destroy subscriptions, clients, services, timers or action clients between two waits."""
        from rclpy.client import Client
        from rclpy.service import Service
        from rclpy.subscription import Subscription
        from rclpy.timer import Timer

        def destroy_all() -> None:
            for entity in entities:
                if isinstance(entity, Subscription):
                    self.node.destroy_subscription(entity)
                elif isinstance(entity, Client):
                    self.node.destroy_client(entity)
                elif isinstance(entity, Service):
                    self.node.destroy_service(entity)
                elif isinstance(entity, Timer):
                    self.node.destroy_timer(entity)
                else:  # an action client or server removes itself from the node
                    entity.destroy()
        self.check()
        wait_future(self.executor.create_task(destroy_all), timeout)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(5)


def ros_subprocess_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Return the environment for a child ROS process: same loopback-only DDS domain."""
    env = dict(os.environ)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['PYTHONUNBUFFERED'] = '1'
    env.update(extra or {})
    return env


def start_python(script: Path, *args: str, env: Optional[Dict[str, str]] = None,
                 log_path: Optional[Path] = None) -> subprocess.Popen:
    """Start a Python script of the venv as a separate process."""
    out = open(log_path, 'wb') if log_path else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, str(script), *args], env=ros_subprocess_env(env),
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 5) -> int:
    """
    Stop a child process, escalating to SIGKILL; return its exit code.

    Before the SIGKILL it gets SIGUSR1, on which the bridge prints its threads' stacks: a
    stop that hangs leaves in the log where it hung.
    """
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            try:
                proc.wait(1.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
    return proc.returncode


def executable(name: str) -> str:
    """
    Return the path of one of the project's executables (``bridge``, ``emulator``, ...).

    On a ROS install ament_python puts them in ``<prefix>/lib/<package>/``, found through the
    ament index; in a PyPI venv they are next to the interpreter. Never a bare name from
    PATH: iproute2 has a ``bridge`` too.
    """
    from ament_index_python.packages import get_package_prefix, PackageNotFoundError
    for package in ('roboflare_bridge', 'roboflare_dev'):
        try:
            installed = Path(get_package_prefix(package)) / 'lib' / package / name
        except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH at all
            continue
        if installed.exists():
            return str(installed)
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    raise FileNotFoundError(f'executable {name!r} is neither in the ament index '
                            f'(roboflare_bridge, roboflare_dev) nor next to {sys.executable}')


def wait_until_true(predicate: Callable[[], bool], timeout: float, what: str = '') -> None:
    """Poll a condition that nothing signals (the ROS graph, a file), with a deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f'timed out after {timeout}s waiting for {what or predicate}')
        time.sleep(0.05)


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str = '') -> None:
    """Wait for a condition another thread or process makes true, with a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f'timed out after {timeout}s waiting for {what or predicate}')
        await asyncio.sleep(0.02)


def _ros_arg(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(f"'{v}'" for v in value) + ']'
    return str(value)


class BridgeProcess:
    """The ``bridge`` executable as a separate process, in a namespace of its own."""

    count = 0

    def __init__(self, tmp_path: Path, base_url: str, token: str,
                 params: Optional[Dict[str, Any]] = None, namespace: str = '',
                 env: Optional[Dict[str, str]] = None, ros_args: Sequence[str] = ()) -> None:
        BridgeProcess.count += 1
        self.namespace = namespace or f'/t{uuid.uuid4().hex[:8]}'
        self.node_name = f'{self.namespace}/roboflare_bridge'
        self.token = token
        self.token_file = tmp_path / 'token'
        self.token_file.write_text(token + '\n')
        self.token_file.chmod(0o600)
        self.log_path = tmp_path / f'bridge-{BridgeProcess.count}.log'
        self.args = [executable('bridge'), '--ros-args', '-r', f'__ns:={self.namespace}',
                     '-p', f'base_url:={base_url}', '-p', f'token_file:={self.token_file}']
        for name, value in (params or {}).items():
            self.args += ['-p', f'{name}:={_ros_arg(value)}']
        self.args += list(ros_args)
        self.proc: Optional[subprocess.Popen] = None
        self._env = env
        self.start()

    def start(self) -> None:
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen(self.args, env=ros_subprocess_env(self._env),
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def name(self, private: str) -> str:
        """Return the full name of one of the node's private services, actions or topics."""
        return f'{self.node_name}/{private}'

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> int:
        assert self.proc is not None
        return stop_process(self.proc, sig, timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors='replace')


class Collector:
    """Messages from an rclpy subscription, with a wait on a condition over them."""

    def __init__(self) -> None:
        self.messages: List[Any] = []
        self.received_at: List[float] = []  # time.time() of each message's arrival
        self._changed = threading.Condition()

    def __call__(self, message: Any) -> None:
        with self._changed:
            self.messages.append(message)
            self.received_at.append(time.time())
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[List[Any]], bool], timeout: float,
                 what: str = '') -> List[Any]:
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self.messages), timeout):
                raise TimeoutError(f'timed out after {timeout}s waiting for {what or predicate}'
                                   f' ({len(self.messages)} messages)')
            return list(self.messages)

    def count(self, at_least: int, timeout: float) -> List[Any]:
        return self.wait_for(lambda m: len(m) >= at_least, timeout, f'{at_least} messages')


def diagnostics_values(ros: 'RosHarness', name_part: str, timeout: float = 15,
                       predicate: Optional[Callable[[Dict[str, str]], bool]] = None
                       ) -> Dict[str, str]:
    """Return the key/values of the first /diagnostics status whose name has ``name_part``."""
    from diagnostic_msgs.msg import DiagnosticArray
    found: Dict[str, str] = {}
    last: Dict[str, Any] = {}  # the last status of that name, for the timeout's message
    collector = Collector()
    subscription = ros.node.create_subscription(DiagnosticArray, '/diagnostics', collector, 10)

    def match(arrays: List[Any]) -> bool:
        for array in arrays[-3:]:
            for status in array.status:
                if name_part in status.name:
                    values = {kv.key: kv.value for kv in status.values}
                    values.update(_level=status.level, _message=status.message)
                    last.clear()
                    last.update(values)
                    if predicate is None or predicate(values):
                        found.update(values)
                        return True
        return False
    try:
        collector.wait_for(match, timeout, f'a diagnostics status named {name_part!r}')
    except TimeoutError as exc:
        raise TimeoutError(f'{exc}; the last one: {last or "none"}') from None
    finally:
        ros.destroy(subscription)
    return found


def rss_bytes(pid: int, field: str = 'VmRSS') -> int:
    """Return the resident set size of a process (``VmHWM``: its peak so far)."""
    for line in open(f'/proc/{pid}/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1]) * 1024
    raise ValueError(f'no {field}')


__all__: List[str] = ['EmulatorThread', 'EmulatorProcess', 'RosHarness', 'BridgeProcess',
                      'Collector', 'FakePublisher', 'FakeStream', 'fake_publishers',
                      'diagnostics_values', 'rss_bytes', 'wait_future', 'wait_until',
                      'wait_until_true', 'start_python', 'stop_process', 'executable',
                      'ros_subprocess_env', 'small_filesystem', 'fill_filesystem',
                      'run_in_virtual_time', 'VirtualTimeLoop']
